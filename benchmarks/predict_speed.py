"""Milliseconds per face for ``facekit predict`` on CPU, detection and alignment included.

    python -m benchmarks.predict_speed [--model-a PATH] [--model-b PATH] [--images 50]

Without model files it builds the default recipes' exports (speed does not
depend on the weights). Each chip is predicted one at a time, as a user
calling predict on single photos would. Writes benchmarks/results/predict_speed.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import TRAIN_VAL, save


def default_models(tmp: Path) -> dict[str, Path]:
    """Exports of the default recipes (flip averaging and internal size included), untrained."""
    from facekit.export import save_hand_in
    from facekit.recipe import TrainConfig
    from facekit.train import build_models

    paths = {"A": tmp / "age_gender_A.keras", "B": tmp / "age_gender_B.keras"}
    for kind, task in (("A", "scratch"), ("B", "finetune")):
        save_hand_in(build_models(TrainConfig.for_task(task, weights="none")).export, paths[kind])
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-a", type=Path)
    ap.add_argument("--model-b", type=Path)
    ap.add_argument("--images", type=int, default=50)
    args = ap.parse_args()
    os.environ.setdefault("FACEKIT_MODEL_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "models"))
    from facekit.align import align_face
    from facekit.detect import FaceFinder
    from facekit.imageio import read_rgb
    from facekit.inference import load
    from facekit.predict import predict_image
    from facekit.template import load_template

    chips = sorted(TRAIN_VAL.iterdir())[:: max(1, 5000 // args.images)][: args.images]
    template = load_template()
    result: dict[str, object] = {"images": len(chips)}
    with tempfile.TemporaryDirectory() as tmp, FaceFinder(max_faces=20) as finder:
        paths = default_models(Path(tmp))
        paths = {"A": args.model_a or paths["A"], "B": args.model_b or paths["B"]}
        start = time.perf_counter()
        for p in chips:
            rgb = read_rgb(p)
            for f in finder.find(rgb, thorough=True):
                align_face(rgb, f.points, template)
        result["detect_align_ms"] = round((time.perf_counter() - start) / len(chips) * 1000, 1)
        for kind, path in paths.items():
            lm = load(path)
            predict_image(chips[0], [lm], finder, template)  # warm-up: first call traces the model
            faces, start = 0, time.perf_counter()
            for p in chips:
                faces += len(predict_image(p, [lm], finder, template)[0].faces)
            ms = (time.perf_counter() - start) / faces * 1000
            result[f"model_{kind}"] = {"file": str(path) if path in (args.model_a, args.model_b) else "untrained",
                                       "ms_per_face": round(ms, 1), "faces": faces}
            print(f"Model {kind}: {ms:.1f} ms per face (detection + alignment + model)")
    print(f"detection + alignment alone: {result['detect_align_ms']} ms per image")
    print(f"wrote {save('predict_speed', result)}")


if __name__ == "__main__":
    main()

"""How fast ``facekit predict`` answers on this machine: one photo at a time, and a folder.

    python -m benchmarks.predict_speed [--model-a PATH] [--model-b PATH] [--images 100] [--folder 300]

Without model files it builds the default recipes' exports (speed does not
depend on the weights). Two figures per model, detection and alignment included:

- single image: ``Predictor.image`` on each of ``--images`` chips, one after
  the other, every stage in one thread (what an app calling the library per
  photo sees; process start, model loading and the once-per-model LiteRT
  conversion excluded, reported apart);
- folder: ``Predictor.stream`` over ``--folder`` chips, the reader thread
  overlapping the model and faces batched (what ``facekit predict FOLDER`` does).

Each comes with the share of time per stage (read, detect, align, model), for
``--engine`` (predict's default ``auto``: LiteRT where it runs, else Keras).
Writes benchmarks/results/predict_speed.json. Run it on an otherwise idle
machine: a training run beside it halves every figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import TRAIN_VAL, save
from facekit.choices import ENGINES


def default_models(tmp: Path) -> dict[str, Path]:
    """Exports of the default recipes (flip averaging and internal size included), untrained."""
    from facekit.engine.recipe import TrainConfig
    from facekit.engine.train import build_models
    from facekit.model.export import save_hand_in

    paths = {"A": tmp / "age_gender_A.keras", "B": tmp / "age_gender_B.keras"}
    for kind, task in (("A", "scratch"), ("B", "finetune")):
        save_hand_in(build_models(TrainConfig.for_task(task, weights="none")).export, paths[kind])
    return paths


def shares(timings: dict[str, float]) -> dict[str, float]:
    total = sum(timings.values()) or 1.0
    return {stage: round(sec / total, 3) for stage, sec in timings.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-a", type=Path)
    ap.add_argument("--model-b", type=Path)
    ap.add_argument("--images", type=int, default=100, help="chips for the single-image latency")
    ap.add_argument("--folder", type=int, default=300, help="chips for the folder throughput")
    ap.add_argument("--engine", default="auto", choices=ENGINES)
    args = ap.parse_args()
    os.environ.setdefault("FACEKIT_MODEL_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "models"))
    from facekit.inference.load import load
    from facekit.inference.predict import Predictor

    every = sorted(TRAIN_VAL.iterdir())
    singles = every[:: max(1, len(every) // args.images)][: args.images]
    folder = every[1 :: max(1, len(every) // args.folder)][: args.folder]
    result: dict[str, object] = {"single_images": len(singles), "folder_images": len(folder),
                                 "threads": os.cpu_count(), "engine": args.engine}
    with tempfile.TemporaryDirectory() as tmp:
        built = default_models(Path(tmp))
        given = {"A": args.model_a, "B": args.model_b}
        for kind in ("B", "A"):
            path = given[kind] or built[kind]
            t = time.perf_counter()
            lm = load(path)
            with Predictor([lm], engine=args.engine) as predictor:
                predictor.image(singles[0])  # the first call compiles the model's predict step
                startup = time.perf_counter() - t
                engine = "litert" if predictor.engines else "keras"
            with Predictor([lm], engine=args.engine) as predictor:
                predictor.image(singles[0])
                before = predictor.timings
                per_face = []
                for p in singles:
                    t = time.perf_counter()
                    n = len(predictor.image(p).faces)
                    if n:
                        per_face.append((time.perf_counter() - t) / n * 1000)
                single_t = {k: v - before[k] for k, v in predictor.timings.items()}
            with Predictor([lm], engine=args.engine) as predictor:
                predictor.image(singles[0])
                before = predictor.timings
                t = time.perf_counter()
                faces = sum(len(r.faces) for r in predictor.stream(folder))
                seconds = time.perf_counter() - t
                folder_t = {k: v - before[k] for k, v in predictor.timings.items()}
            result[f"model_{kind}"] = {
                "file": str(path) if given[kind] else "untrained default export",
                "engine": engine,
                "load_convert_and_first_image_s": round(startup, 2),
                "single_image": {"median_ms_per_face": round(statistics.median(per_face), 1),
                                 "mean_ms_per_face": round(statistics.fmean(per_face), 1),
                                 "p90_ms_per_face": round(statistics.quantiles(per_face, n=10)[-1], 1),
                                 "faces": len(per_face), "stage_share": shares(single_t)},
                "folder": {"faces_per_second": round(faces / seconds, 1), "ms_per_face": round(seconds / faces * 1000,
                                                                                               1),
                           "faces": faces, "seconds": round(seconds, 2),
                           "stage_seconds": {k: round(v, 2) for k, v in folder_t.items()}},
            }
            r = result[f"model_{kind}"]
            print(f"Model {kind} ({engine}): single image {r['single_image']['median_ms_per_face']} ms per face "
                  f"(median; mean {r['single_image']['mean_ms_per_face']}), shares {r['single_image']['stage_share']}; "
                  f"folder {r['folder']['faces_per_second']} faces/s")
    print(f"wrote {save('predict_speed', result)}")


if __name__ == "__main__":
    main()

"""How far a mixed-precision model's answers are from its float32 hand-in file (same weights).

    python -m benchmarks.mixed_export RUN_DIR [--images 200] [--data ../shared/data/train_val]

Training on a GPU runs in mixed_float16 (``--precision auto``); the hand-in
file is rebuilt in float32 (``facekit.model.export``). This rebuilds the run's
model in mixed_float16, loads the run's hand-in weights into it, and compares
both on held-out raw chips read as the lecturer reads them. Writes
benchmarks/results/mixed_export.json; ``facekit.model.export.MIXED_TOLERANCE`` is
set from it, with margin.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.common import TRAIN_VAL, held_out, save


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--data", type=Path, default=TRAIN_VAL)
    args = ap.parse_args()

    import keras

    from facekit.engine.recipe import TrainConfig
    from facekit.engine.train import build_models
    from facekit.model.export import global_policy
    from facekit.model.models import export_from_train

    cfg = TrainConfig.load(args.run_dir / "args.json")
    hand_in = keras.models.load_model(args.run_dir / cfg.export_name)
    with global_policy("mixed_float16"):
        mixed = export_from_train(build_models(TrainConfig(**{**cfg.__dict__, "weights": "none"})).train,
                                  cfg.output_order, cfg.tta)
    mixed.set_weights(hand_in.get_weights())
    val = held_out([args.run_dir], args.data)
    x = val.x[: args.images]
    diffs, means = {}, {}
    got_f, got_m = hand_in.predict(x, verbose=0), mixed.predict(x, verbose=0)
    for i, role in enumerate(hand_in.output_names):
        d = np.abs(np.asarray(got_f[i], np.float64) - np.asarray(got_m[i], np.float64)).reshape(-1)
        diffs[role], means[role] = float(d.max()), float(d.mean())
    age = list(hand_in.output_names).index("age")
    mae = {name: float(np.mean(np.abs(np.asarray(p[age]).reshape(-1) - val.ages[: len(x)])))
           for name, p in (("float32", got_f), ("mixed_float16", got_m))}
    result = {"run": str(args.run_dir), "images": len(x), "backend": keras.backend.backend(),
              "max_abs_diff": diffs, "mean_abs_diff": means, "mae": mae}
    print(result)
    print(f"wrote {save('mixed_export', result)}")


if __name__ == "__main__":
    main()

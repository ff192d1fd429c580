"""Training and inference speed of each model design on this machine, with the default recipe.

    python -m benchmarks.train_speed [--steps 6] [--designs "A residual" ...] [--set KEY=VALUE ...] [--tag NAME]

For Model A (plain and residual trunks) and Model B (the default backbone at
its default internal size): training images per second on batches of 64
(``train_on_batch`` with the default optimizer and losses, after two warm-up
steps), and milliseconds per image of the exported file (flip averaging
inside, batches of 32); ``--set`` prices a lever's design, such as wider
stages, against the defaults' row of the same machine. Inputs are random: speed does not depend on the
pixels, and the loader is measured on its own (``benchmarks.pipeline``).
Writes benchmarks/results/train_speed[-TAG].json and .md with machine and commit.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.accuracy import add_set_option, tagged_overrides
from benchmarks.common import report, save, table

DESIGNS = {"A plain": ("scratch", {"arch": "plain"}), "A residual": ("scratch", {"arch": "residual"}),
           "B default": ("finetune", {"weights": "none"})}  # the weights do not change the speed


def measure(task: str, options: dict, steps: int, batch: int = 64) -> dict[str, float]:
    import keras

    from facekit.contract import AGE_DISTRIBUTION, N_AGES
    from facekit.data.dataset import age_distributions
    from facekit.engine.recipe import TrainConfig
    from facekit.engine.train import build_models, compile_train

    cfg = TrainConfig.for_task(task, **options)
    models = build_models(cfg)
    compile_train(models.train, cfg, steps_per_epoch=100, epochs=cfg.epochs)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, 128, 128, 3)).astype("float32")
    ages = rng.integers(0, N_AGES, batch)
    y = {"age": ages[:, None].astype("float32"), "gender": rng.integers(0, 2, (batch, 1)).astype("float32"),
         AGE_DISTRIBUTION: age_distributions(ages, cfg.sigma)}
    for _ in range(2):
        models.train.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        models.train.train_on_batch(x, y)
    train_ips = steps * batch / (time.perf_counter() - start)
    xs = x[:32]
    models.export.predict_on_batch(xs)
    start = time.perf_counter()
    for _ in range(3):
        models.export.predict_on_batch(xs)
    ms = (time.perf_counter() - start) / (3 * len(xs)) * 1000
    keras.backend.clear_session()
    return {"train_images_per_second": round(train_ips, 1), "predict_ms_per_image": round(ms, 2),
            "parameters": int(models.train.count_params())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--designs", nargs="+", choices=list(DESIGNS), default=list(DESIGNS))
    add_set_option(ap, "every design measured")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    overrides = tagged_overrides(ap, args)
    import keras

    rows = {name: measure(DESIGNS[name][0], {**DESIGNS[name][1], **overrides}, args.steps) for name in args.designs}
    name = "train_speed" + (f"-{args.tag}" if args.tag else "")
    dest = save(name, {"backend": keras.backend.backend(), "steps": args.steps, "overrides": overrides, "rows": rows})
    print(f"wrote {dest}")
    changed = f"; changed from the defaults: {json.dumps(overrides)}" if overrides else ""
    md = report(name, [f"{keras.backend.backend()}{changed}"], table(
        ["design", "parameters", "training images/s (batch 64)", "ms per image, exported file (batch 32)"],
        [[k, f"{v['parameters']:,}", v["train_images_per_second"], v["predict_ms_per_image"]]
         for k, v in rows.items()]))
    print(md.read_text())


if __name__ == "__main__":
    main()

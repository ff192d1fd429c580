"""What ``train --refit`` is worth: the split run's file against the refit's, on images neither saw.

    python -m benchmarks.refit [--tasks finetune] [--seeds 0 1 2] [--cache cache/train_val.h5]
                               [--data ../shared/data/train_val] [--epochs N] [--limit N] [--tag NAME]
                               [--set KEY=VALUE ...] [--resume]

The holdout is carved off for this benchmark only: the course template's
validation fifth of the folder (1,000 of train_val's 5,000 chips, the images
every other benchmark validates on). The other four fifths become a pool
cache (their rows copied from the prep cache, crops unchanged), and
``facekit train --refit`` runs on the pool exactly as a user's would on a
folder: the template split of the pool (3,200 / 800) chooses the epoch count,
then the refit trains on all 4,000 for that many epochs. Both files are scored
on the holdout read as the lecturer reads them. The difference is what 800
more training images (a quarter more) are worth at this size; a user's refit
on the full folder adds 1,000 to 4,000. Rows are merged into
benchmarks/results/refit[-TAG].json by (task, seed), so seeds can run in
separate sessions (a file of other settings is refused: use another tag);
``--resume`` continues those seeds' run folders where a stopped session left
them (``facekit train --refit --resume``: finished runs are only scored).
Writes benchmarks/results/refit[-TAG].json and .md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.accuracy import add_set_option, parse_overrides
from benchmarks.common import (
    RESULTS,
    TRAIN_VAL,
    check_unseen,
    earlier_rows,
    environment,
    mean_sd,
    merge_row,
    model_letter,
    plus_minus,
    report,
    save,
    score_model,
    table,
)


def pool_cache(src: Path, dest: Path, leave_out: set[str]) -> int:
    """Copy every row of the cache ``src`` whose file is not in ``leave_out`` to ``dest``; returns the rows."""
    import h5py

    from facekit.data.cache import CacheWriter
    from facekit.utils.atomic import atomic_path

    with h5py.File(src, "r") as f, atomic_path(dest) as tmp:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["filename"][...]]
        keep = [i for i, n in enumerate(names) if n not in leave_out]
        writer = CacheWriter(tmp, f["images"].shape[1], dict(f.attrs))
        for i in keep:
            writer.append(**{col: (names[i] if col == "filename" else f[col][i]) for col in f})
        writer.close()
    return len(keep)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tasks", nargs="+", default=["finetune"], choices=["scratch", "finetune"])
    ap.add_argument("--cache", type=Path, default=Path("cache/train_val.h5"))
    ap.add_argument("--data", type=Path, default=TRAIN_VAL, help="the raw folder the cache was built from")
    ap.add_argument("--epochs", type=int, default=None, help="override the default epoch count (smoke runs)")
    ap.add_argument("--limit", type=int, default=None, help="train on a subset of the pool (smoke runs only)")
    ap.add_argument("--project", default="runs/refit")
    ap.add_argument("--tag", default="")
    add_set_option(ap)
    ap.add_argument("--resume", action="store_true",
                    help="continue these seeds' run folders where they stopped; finished ones are only scored")
    args = ap.parse_args()
    overrides = parse_overrides(args.overrides)
    name = "refit" + (f"-{args.tag}" if args.tag else "")
    rows = earlier_rows(name, {"epochs_override": args.epochs, "limit": args.limit, "overrides": overrides})

    from facekit.data.labelled import load_labelled
    from facekit.engine.recipe import TrainConfig
    from facekit.engine.refit import refit

    holdout = load_labelled(args.data, split="val")
    pool = Path(args.project) / f"pool-{args.cache.stem}.h5"
    pool.parent.mkdir(parents=True, exist_ok=True)
    pool_rows = pool_cache(args.cache, pool, set(holdout.names))
    for task in args.tasks:
        for seed in args.seeds:
            cfg = TrainConfig.for_task(task, **{**overrides, "cache": str(pool), "init_seed": seed,
                                                "epochs": args.epochs, "limit": args.limit,
                                                "project": args.project,
                                                "name": f"{task}-seed{seed}" + (f"-{args.tag}" if args.tag else "")})
            split_dir = Path(args.project) / task / cfg.name
            chosen, full = refit(cfg, resume=split_dir if args.resume and (split_dir / "args.json").is_file() else None)
            if any(check_unseen([chosen.run_dir, full.run_dir], holdout.names)):  # trained on it: raises
                raise ValueError(f"{chosen.run_dir}: chose its epoch on the holdout, which must stay unseen")
            row = {"task": task, "seed": seed, "commit": environment()["commit"],
                   "best_epoch": chosen.metrics["best_epoch"],
                   "split": {"train_images": chosen.metrics["train_images"], "run_dir": str(chosen.run_dir),
                             "train_seconds": chosen.metrics["train_seconds"],
                             **score_model(chosen.model_path, holdout, cfg.tta, cfg.output_order)},
                   "refit": {"train_images": full.metrics["train_images"], "run_dir": str(full.run_dir),
                             "train_seconds": full.metrics["train_seconds"],
                             **score_model(full.model_path, holdout, cfg.tta, cfg.output_order)},
                   "backend": full.metrics["backend"], "gpu": full.metrics["gpu"]}
            rows = sorted(merge_row(rows, row, ("task", "seed")), key=lambda r: (r["task"], r["seed"]))
            print(row)
            write(name, args, overrides, len(holdout.names), pool_rows, rows)
    print(f"wrote {RESULTS / name}.json")


def write(name: str, args: argparse.Namespace, overrides: dict[str, Any], holdout: int, pool_rows: int,
          rows: list[dict[str, Any]]) -> None:
    summary = {}
    for task in {r["task"] for r in rows}:
        got = [r for r in rows if r["task"] == task]
        summary[task] = {f"{part}_{k}": mean_sd([r[part][k] for r in got])
                         for part in ("split", "refit") for k in ("raw_mae", "raw_acc")}
        summary[task]["mae_change"] = mean_sd([r["refit"]["raw_mae"] - r["split"]["raw_mae"] for r in got])
    save(name, {"holdout_images": holdout, "pool_images": pool_rows, "epochs_override": args.epochs,
                "limit": args.limit, "overrides": overrides, "rows": rows, "summary": summary})
    about = (f"backend {rows[0]['backend']}, GPU {rows[0]['gpu']}; holdout: the template's {holdout} validation "
             f"chips, read as cv2.imread / 255; pool: the other {pool_rows}"
             + (f"; changed from the defaults: {overrides}" if overrides else ""))
    report(name, [about], table(
        ["model", "seeds", "split run (pool's train part) MAE", "accuracy", "refit (whole pool) MAE", "accuracy",
         "MAE change"],
        [[model_letter(task), ",".join(str(r["seed"]) for r in rows if r["task"] == task),
          plus_minus(s["split_raw_mae"]), f"{plus_minus(s['split_raw_acc'], 100)} %", plus_minus(s["refit_raw_mae"]),
          f"{plus_minus(s['refit_raw_acc'], 100)} %", plus_minus(s["mae_change"])] for task, s in summary.items()]))


if __name__ == "__main__":
    main()

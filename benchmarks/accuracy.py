"""Accuracy of the default models over several seeds, scored the lecturer's way.

    python -m benchmarks.accuracy [--seeds 0 1 2] [--tasks scratch finetune] [--cache cache/train_val.h5]
                                  [--data ../shared/data/train_val] [--epochs N] [--tag NAME] [--resume]
                                  [--set KEY=VALUE ...]

Each seed trains with the defaults (only the initialisation/shuffling seed
varies; the split stays the course template's), then scores the exported
file on the held-out validation images read as ``cv2.imread / 255`` with no
alignment (``facekit evaluate --split val``). The defaults build flip
averaging into the exported graph, so the plain MAE column is what the
lecturer's code gets.
Writes benchmarks/results/accuracy[-TAG].json and .md with per-run rows and
mean +- standard deviation per model. ``--set`` changes one training option
from its default for every run (a lever at full length: ``--set val_images=raw
--tag raw-val``; values are read as JSON where they parse, else as text) and
is recorded in the results. ``--resume`` keeps the rows the results file
holds (a series of other settings is refused) and continues runs of the same
names that a stopped series left (``facekit train --resume``), so a series can
span sessions and machines. Meant for the GPU machine
(../shared/docs/gpu.md): a full run on a 2-core CPU takes hours per model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS,
    TRAIN_VAL,
    earlier_rows,
    mean_sd,
    merge_row,
    model_letter,
    plus_minus,
    report,
    save,
    table,
    train_and_score,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tasks", nargs="+", default=["scratch", "finetune"], choices=["scratch", "finetune"])
    ap.add_argument("--cache", default="cache/train_val.h5")
    ap.add_argument("--data", type=Path, default=TRAIN_VAL, help="the raw folder the cache was built from")
    ap.add_argument("--epochs", type=int, default=None, help="override the default epoch count (smoke runs)")
    ap.add_argument("--limit", type=int, default=None, help="train on a subset (smoke runs only)")
    ap.add_argument("--project", default="runs/accuracy")
    ap.add_argument("--tag", default="")
    ap.add_argument("--resume", action="store_true",
                    help="keep the runs the results file holds and continue run folders a stopped series left, "
                    "instead of new runs")
    add_set_option(ap)
    args = ap.parse_args()
    overrides = tagged_overrides(ap, args)

    from facekit.data.labelled import load_labelled

    val = load_labelled(args.data, split="val")
    name = "accuracy" + (f"-{args.tag}" if args.tag else "")
    planned = [(task, seed) for task in args.tasks for seed in args.seeds]
    # --resume keeps the rows an earlier call measured (refused if it ran other settings): a series that
    # spans machines whose run folders are gone (the GPU machine's) trains each seed once.
    settings = {"epochs_override": args.epochs, "limit": args.limit, "overrides": overrides}
    rows: list[dict] = earlier_rows(name, settings) if args.resume else []
    for task, seed in planned:
        if any((r["task"], r["seed"]) == (task, seed) for r in rows):
            print(f"{task} seed {seed}: measured already ({RESULTS / name}.json)", flush=True)
            continue
        cfg = run_config(task, seed, args, overrides)
        previous = Path(cfg.project) / task / cfg.name
        resume = previous if args.resume and (previous / "args.json").is_file() else None
        row = {"task": task, "seed": seed, **train_and_score(cfg, val, resume=resume)}
        print(row)
        rows = merge_row(rows, row, ("task", "seed"))
        # Written after every run, so a long series stopped part-way still leaves what finished.
        measured = {(r["task"], r["seed"]) for r in rows}
        write(name, args, val, rows, complete=all(p in measured for p in planned))
    print(f"{RESULTS / name}.json holds {len(rows)} runs")


def run_config(task: str, seed: int, args: argparse.Namespace, overrides: dict[str, Any]) -> Any:
    """One run's TrainConfig: the defaults, then ``--set``'s levers, then this series' own settings.

    A lever's value must survive the series' unset options (``--set epochs=60`` with no ``--epochs``),
    and a lever that moves the recipe gets the tag in its run name, so it never resumes or
    overwrites a run of the defaults.
    """
    from facekit.engine.recipe import TrainConfig

    own = {"epochs": args.epochs, "limit": args.limit}
    clash = sorted(k for k, v in own.items() if v is not None and k in overrides)
    if clash:
        raise SystemExit(f"--set {clash[0]}=... and --{clash[0]} both given: name it once")
    return TrainConfig.for_task(task, **{**own, **overrides, "cache": args.cache, "init_seed": seed,
                                         "project": args.project,
                                         "name": f"{task}-seed{seed}" + (f"-{args.tag}" if overrides else "")})


def add_set_option(ap: argparse.ArgumentParser, scope: str = "every run") -> None:
    """``--set KEY=VALUE ...``, the one spelling of a lever for the benchmarks that take one."""
    ap.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                    help=f"a training option away from its default, for {scope} (TrainConfig field names)")


def tagged_overrides(ap: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """``--set``'s overrides, refused without ``--tag``: a lever's figures must not take the defaults' name."""
    overrides = parse_overrides(args.overrides)
    if overrides and not args.tag:
        ap.error("--set needs a --tag: its runs and results must not take the defaults' names")
    return overrides


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["val_images=raw", "ema=true"]`` -> ``{"val_images": "raw", "ema": True}``; unknown fields refused."""
    from dataclasses import fields

    from facekit.engine.recipe import TrainConfig

    known = {f.name for f in fields(TrainConfig)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"--set {item}: expected KEY=VALUE with KEY one of TrainConfig's fields")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def write(name: str, args: argparse.Namespace, val: object, rows: list[dict], complete: bool) -> None:
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    summary = {}
    for task in tasks:
        got = [r for r in rows if r["task"] == task]
        summary[task] = {k: mean_sd([r[k] for r in got])
                         for k in ("raw_mae", "raw_acc", "raw_tta_mae", "raw_tta_acc", "train_seconds")}
    overrides = parse_overrides(args.overrides)
    result = {"validation_images": len(val.names), "epochs_override": args.epochs, "limit": args.limit,
              "overrides": overrides, "complete": complete, "rows": rows, "summary": summary}
    save(name, result)
    about = (f"backend {rows[0]['backend']}, GPU {rows[0]['gpu']}; {len(val.names)} validation images read as "
             "cv2.imread / 255 (raw chips, no alignment)"
             + (f"; changed from the defaults: {json.dumps(overrides)}" if overrides else "")
             + ("" if complete else "; PARTIAL: the series did not finish, only the rows below ran"))
    report(name, [about], table(
        ["model", "seeds", "MAE", "accuracy", "MAE flip-TTA", "accuracy flip-TTA", "train s"],
        [[model_letter(task), ",".join(str(r["seed"]) for r in rows if r["task"] == task),
          plus_minus(s["raw_mae"]), f"{plus_minus(s['raw_acc'], 100)} %", plus_minus(s["raw_tta_mae"]),
          f"{plus_minus(s['raw_tta_acc'], 100)} %", f"{s['train_seconds']['mean']:.0f}"]
         for task, s in summary.items()]))


if __name__ == "__main__":
    main()

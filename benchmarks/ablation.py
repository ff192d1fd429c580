"""One lever at a time against the defaults, scored the lecturer's way on held-out raw chips.

    python -m benchmarks.ablation [--task finetune|scratch] [--variants NAME ...] [--seeds 0 ...]
                                  [--epochs N] [--tag NAME]

Each variant is the default recipe with one change (``VARIANTS``). Every run
trains on the template split's 4,000 images and is scored on the 1,000
held-out chips read as ``cv2.imread / 255``, with and without flip averaging.
Rows are merged into benchmarks/results/ablation[-TAG].json by (task, variant,
seed), so a long ablation can run in pieces and a rerun replaces its row; the
.md table beside it shows each variant's mean and its change against
``baseline`` over the seeds present. ``--epochs`` shortens every run alike
(a CPU-sized ablation); the tag should say so, since a file whose rows ran
another ``--epochs`` is refused. ``--resume`` makes a chain of time-limited
calls (the GPU machine's 10-minute commands) add up to one ablation: rows the
file already holds are not trained again, and a run that a limit cut short
continues from its last epoch (``facekit train --resume``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS,
    ROOT,
    TRAIN_VAL,
    earlier_rows,
    environment,
    in_defaults,
    mean_sd,
    merge_row,
    model_letter,
    report,
    save,
    score_model,
    table,
    train_and_score,
)

RAW_CACHE = "cache/train_val_raw.h5"  # prep --no-align: the chips as they are, for aligned-vs-raw training

BOTH, A_ONLY, B_ONLY = ("scratch", "finetune"), ("scratch",), ("finetune",)

# name -> (what changes, TrainConfig overrides, the tasks it applies to)
VARIANTS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "baseline": ("the defaults (exported without the in-graph flip; see its own columns)", {}, BOTH),
    "aug-light": ("augmentation: flip and a small shift only", {"augment": "light"}, BOTH),
    "aug-strong": ("augmentation: every range x 1.5", {"augment": "strong"}, BOTH),
    "aug-none": ("no augmentation", {"augment": "none"}, BOTH),
    "ema": ("EMA of the weights (half-life one epoch), validated and exported with them", {"ema": True}, BOTH),
    "ema-0.999": ("EMA with a fixed momentum 0.999 (the first version: no warm-up in Keras's EMA)",
                  {"ema": True, "ema_momentum": 0.999}, BOTH),
    "no-ema": ("the raw weights, no EMA (B's default before 2026-11-30)", {"ema": False}, B_ONLY),
    "mixup": ("mixup (alpha 0.2) on images, age distributions and gender", {"mix": "mixup"}, BOTH),
    "cutmix": ("cutmix (alpha 1.0), targets mixed by area", {"mix": "cutmix"}, BOTH),
    "sigma-1": ("age distribution width 1 year (default 2)", {"sigma": 1.0}, BOTH),
    "sigma-3": ("age distribution width 3 years (default 2)", {"sigma": 3.0}, BOTH),
    "mean-variance": ("adds the mean-variance loss (0.2 x mean, 0.05 x variance)", {"mean_variance": True}, BOTH),
    "gender-weight-3": ("gender loss weighted x 3", {"gender_weight": 3.0}, BOTH),
    "age-weight-0.5": ("age loss weighted x 0.5", {"age_weight": 0.5}, BOTH),
    "internal-128": ("backbone at the input's 128 x 128 (the default before cpu10)", {"internal_size": 128}, B_ONLY),
    "internal-160": ("backbone runs at 160 x 160 (bilinear upsampling in the graph)", {"internal_size": 160}, B_ONLY),
    "internal-192": ("backbone runs at 192 x 192", {"internal_size": 192}, B_ONLY),
    "distill": ("targets blended half-and-half with a Model B teacher's predictions (--teacher)",
                {"teachers": "<teacher>"}, A_ONLY),
    "raw-chips": ("trained on the chips as they are (prep --no-align) instead of aligned crops",
                  {"cache": RAW_CACHE}, BOTH),
    "backbone-lr-0.1": ("discriminative rates: the backbone at 0.1 x the heads' learning rate",
                        {"backbone_lr": 0.1}, B_ONLY),
    "layer-decay-0.95": ("layer-wise rates: backbone top at 0.5 x the heads' rate, x 0.95 per layer below",
                         {"backbone_lr": 0.5, "layer_decay": 0.95}, B_ONLY),
    "snapshots-3": ("snapshot ensemble: 3 cosine cycles in the same epochs, their last epochs merged",
                    {"snapshots": 3}, BOTH),
    "snapshots-2": ("snapshot ensemble: 2 cosine cycles in the same epochs, their last epochs merged",
                    {"snapshots": 2}, BOTH),
    "race-0.2": ("auxiliary race head during training, loss weight 0.2 (the export keeps two outputs)",
                 {"race_weight": 0.2}, BOTH),
}


SCORE_KEYS = ("raw_mae", "raw_acc", "raw_tta_mae", "raw_tta_acc", "raw_graph_tta_mae", "raw_graph_tta_acc")


def default_variants(task: str, teacher: bool) -> list[str]:
    """The variants a plain ``--task`` run trains: those that apply, less any a default has since absorbed.

    A lever that became the default (B's 160 px inside, B's EMA) would otherwise train the baseline again;
    naming it in ``--variants`` still runs it.
    """
    return [v for v, (_, o, tasks) in VARIANTS.items()
            if task in tasks and (teacher or "teachers" not in o) and not in_defaults(task, o)]


def ensure_raw_cache(data: Path) -> None:
    if (ROOT / RAW_CACHE).exists():
        return
    from facekit.prep.pipeline import prep
    from facekit.prep.workers import PrepOptions

    prep(data, ROOT / RAW_CACHE, PrepOptions(align=False))


def _pm(st: dict[str, Any], k: str, mul: float = 1.0) -> str:
    if st[k] is None:  # a column added after this row was scored (see --rescore)
        return "-"
    sd = f" ± {st[k]['sd'] * mul:.2f}" if len(st["seeds"]) > 1 else ""
    return f"{st[k]['mean'] * mul:.2f}{sd}"


def _delta(st: dict[str, Any], base: dict[str, Any] | None, k: str, mul: float = 1.0) -> str:
    if base is None or base[k] is None or st[k] is None:
        return "-"
    return f"{(st[k]['mean'] - base[k]['mean']) * mul:+.2f}"


def variant_tables(result: dict[str, Any]) -> list[list[str]]:
    """One block per model: its heading and a table of each variant's mean over its seeds and its change
    against the baseline's mean."""
    blocks = []
    for task in sorted({r["task"] for r in result["rows"]}):
        rows = [r for r in result["rows"] if r["task"] == task]
        stats = {}
        for name in dict.fromkeys(r["variant"] for r in rows):
            got = [r for r in rows if r["variant"] == name]
            stats[name] = {k: mean_sd([r[k] for r in got]) if all(k in r for r in got) else None
                           for k in (*SCORE_KEYS, "train_seconds", "best_epoch")}
            stats[name]["seeds"] = sorted(r["seed"] for r in got)
        base = stats.get("baseline")
        cells = []
        for name, s in stats.items():
            b = None if name == "baseline" else base
            cells.append([name, VARIANTS.get(name, ("?", {}))[0], ",".join(map(str, s["seeds"])), _pm(s, "raw_mae"),
                          _delta(s, b, "raw_mae"), _pm(s, "raw_acc", 100), _delta(s, b, "raw_acc", 100),
                          _pm(s, "raw_tta_mae"), _pm(s, "raw_tta_acc", 100), _pm(s, "raw_graph_tta_mae"),
                          _pm(s, "raw_graph_tta_acc", 100), f"{s['best_epoch']['mean']:.0f}",
                          f"{s['train_seconds']['mean']:.0f}"])
        blocks.append([f"### Model {model_letter(task)} ({task})", "", *table(
            ["variant", "change", "seeds", "MAE", "Δ MAE", "accuracy %", "Δ acc", "MAE flip-TTA", "acc flip-TTA %",
             "MAE in-graph flip", "acc in-graph flip %", "best epoch", "train s"], cells)])
    return blocks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="finetune", choices=["scratch", "finetune"])
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                    help="default: every variant that applies to --task (distill only with --teacher)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=None, help="shorten every run alike (CPU-sized ablations)")
    ap.add_argument("--cache", default="cache/train_val.h5")
    ap.add_argument("--data", type=Path, default=TRAIN_VAL, help="the raw folder the cache was built from")
    ap.add_argument("--project", default="runs/ablation")
    ap.add_argument("--tag", default="")
    ap.add_argument("--teacher", nargs="+", help="for the distill variant: Model B files trained on the same "
                    "split (several: their mean)")
    ap.add_argument("--rescore", action="store_true",
                    help="score the saved model of every row that lacks a score column (no training)")
    ap.add_argument("--resume", action="store_true",
                    help="skip the (variant, seed) rows the results file holds; continue a run a time limit "
                         "stopped")
    args = ap.parse_args()
    if args.resume and args.rescore:
        ap.error("--rescore trains nothing; --resume is for training")

    from facekit.contract import HAND_IN_NAMES
    from facekit.data.labelled import load_labelled
    from facekit.engine.recipe import TrainConfig

    name = "ablation" + (f"-{args.tag}" if args.tag else "")
    path = RESULTS / f"{name}.json"
    result = json.loads(path.read_text()) if path.exists() else {"rows": []}
    val = load_labelled(args.data, split="val")
    if args.rescore:  # the file's own settings stand: nothing is trained
        for row in result["rows"]:
            if all(k in row for k in SCORE_KEYS):
                continue
            args_json = json.loads((Path(row["run_dir"]) / "args.json").read_text())
            model = Path(row["run_dir"]) / HAND_IN_NAMES[row["task"]]
            row.update(score_model(model, val, args_json.get("tta", False), args_json["output_order"]))
        write(name, result, val, result.get("epochs_override"))
        return
    earlier_rows(name, {"epochs_override": args.epochs})  # before any training: refused if they differ
    variants = args.variants or default_variants(args.task, bool(args.teacher))
    for variant in variants:
        if args.task not in VARIANTS[variant][2]:
            ap.error(f"variant {variant} applies to {' and '.join(VARIANTS[variant][2])} only")
        # Exported without built-in flip averaging, so MAE is the plain network's; every row also reports
        # the in-graph flip (same weights), which is how the defaults export.
        overrides = {"cache": args.cache, "tta": False, **VARIANTS[variant][1]}
        if overrides.get("teachers") == "<teacher>":
            if not args.teacher:
                ap.error("the distill variant needs --teacher PATH")
            overrides["teachers"] = args.teacher
        if overrides["cache"] == RAW_CACHE:
            ensure_raw_cache(args.data)
        for seed in args.seeds:
            if args.resume and (args.task, variant, seed) in measured(name, args.epochs):
                print(f"{variant} seed {seed}: measured already ({RESULTS / name}.json)", flush=True)
                continue
            cfg = TrainConfig.for_task(args.task, init_seed=seed, epochs=args.epochs, project=args.project,
                                       name=f"{name}-{args.task}-{variant}-seed{seed}", **overrides)
            stopped = Path(cfg.project) / args.task / cfg.name
            resume = stopped if args.resume and (stopped / "args.json").is_file() else None
            row = {"task": args.task, "variant": variant, "seed": seed, "epochs": cfg.epochs,
                   "commit": environment()["commit"], **train_and_score(cfg, val, resume=resume)}
            print(row, flush=True)
            rows = earlier_rows(name, {"epochs_override": args.epochs})  # others may have written meanwhile
            result["rows"] = merge_row(rows, row, ("task", "variant", "seed"))
            write(name, result, val, args.epochs)


def measured(name: str, epochs: int | None) -> set[tuple[str, str, int]]:
    """The (task, variant, seed) rows the results file holds now (another call may have added some)."""
    return {(r["task"], r["variant"], r["seed"]) for r in earlier_rows(name, {"epochs_override": epochs})}


def write(name: str, result: dict[str, Any], val: Any, epochs: int | None) -> None:
    result.update(validation_images=len(val.names), epochs_override=epochs)
    save(name, {k: v for k, v in result.items() if k in ("rows", "validation_images", "epochs_override")})
    last = result["rows"][-1]
    about = (f"backend {last['backend']}, GPU {last['gpu']}; epochs {epochs or 'default'}. Scored on the "
             f"{len(val.names)} held-out validation chips read as cv2.imread / 255 (raw, no alignment). Each row's "
             "commit is in the JSON; the line above stamps the last update.")
    report(name, [about], *variant_tables(result))


if __name__ == "__main__":
    main()

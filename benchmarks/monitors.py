"""Which epoch would each monitor and patience have handed in? Finished runs' histories, replayed.

    python -m benchmarks.monitors RUN_DIR|RESULTS.json [...] [--patience 0 12] [--tag NAME]

A run's ``history.csv`` holds every epoch's validation age MAE and gender
accuracy, so the epoch that early stopping and the saved best would have kept
under another ``--monitor`` or ``--patience`` can be read off it without
training again (``facekit.engine.selection.choose_epoch``, the rule resuming uses,
which follows Keras's early stopping). A results file of ``benchmarks.accuracy``
stands for its runs: each row keeps its run's per-epoch validation figures
(``val_history``), so a run folder lost with its session can still be replayed.
Early stopping changes nothing before it stops, so a run with patience 0 (all
epochs) answers for every shorter patience as well. The figures are the
validation images training saw (aligned crops unless the run used
``--val-images raw``); the raw-chip score of an epoch needs its weights, which
only the epoch a run kept has. Writes benchmarks/results/monitors[-TAG].json and .md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import mean_sd, plus_minus, report, save, table


def replay(history: list[dict[str, float]], patience: list[int]) -> list[dict[str, object]]:
    """One row per monitor and patience: where the run stops, the epoch it keeps, that epoch's figures."""
    from facekit.choices import MONITORS
    from facekit.engine.selection import AGE, GENDER, choose_epoch, hand_in_score

    rows = []
    for monitor in MONITORS:
        for p in patience:
            chosen = choose_epoch(history, monitor, p)
            if chosen.best_epoch is None:
                continue
            row = history[chosen.best_epoch - 1]
            rows.append({"monitor": monitor, "patience": p, "epochs_run": chosen.stopped_at or len(history),
                         "kept_epoch": chosen.best_epoch, "val_age_mae": row[AGE],
                         "val_gender_accuracy": row[GENDER],
                         "val_score": hand_in_score(row[AGE], row[GENDER])})
    return rows


def histories(source: Path) -> list[tuple[str, list[dict[str, float]]]]:
    """(run name, per-epoch rows) from a run folder's history.csv, or from each row of an accuracy results file."""
    from facekit.engine.runs import read_history

    if source.suffix == ".json":
        rows = [r for r in json.loads(source.read_text())["rows"] if r.get("val_history")]
        if not rows:
            raise SystemExit(f"{source}: no row records its per-epoch validation figures (val_history); results "
                             "written before they were kept need their run folders")
        return [(Path(r["run_dir"]).name, [dict(zip(r["val_history"], epoch))
                                           for epoch in zip(*r["val_history"].values())]) for r in rows]
    history = read_history(source / "history.csv")
    if not history:
        raise SystemExit(f"{source}: no history.csv (not a training run folder)")
    return [(source.name, history)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--patience", type=int, nargs="+", default=[0, 12])
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    per_run = []
    for source in args.runs:
        for run, history in histories(source):
            rows = replay(history, args.patience)
            per_run.append({"run": run, "epochs": len(history), "rows": rows})
            for r in rows:
                print(f"{run}: {r['monitor']:12s} patience {r['patience']:2d}: ran {r['epochs_run']:2d}, "
                      f"kept {r['kept_epoch']:2d}: {r['val_age_mae']:.2f} MAE, {r['val_gender_accuracy']:.1%}")

    summary = []
    for i, first in enumerate(per_run[0]["rows"]):
        same = [r["rows"][i] for r in per_run if len(r["rows"]) > i]
        summary.append({"monitor": first["monitor"], "patience": first["patience"],
                        **{k: mean_sd([float(r[k]) for r in same])
                           for k in ("epochs_run", "val_age_mae", "val_gender_accuracy", "val_score")}})
    name = "monitors" + (f"-{args.tag}" if args.tag else "")
    print(f"wrote {save(name, {'runs': per_run, 'summary': summary})}")
    about = ("Each run's history.csv replayed (validation images as trained: aligned crops unless --val-images "
             "raw); from: " + ", ".join(str(r) for r in args.runs))
    per_run_md = table(["run", "monitor", "patience", "epochs run", "kept epoch", "val age MAE",
                        "val gender accuracy %"],
                       [[r["run"], x["monitor"], x["patience"], x["epochs_run"], x["kept_epoch"],
                         f"{x['val_age_mae']:.2f}", f"{x['val_gender_accuracy'] * 100:.1f}"]
                        for r in per_run for x in r["rows"]])
    means = table(["monitor", "patience", "epochs run", "val age MAE", "val gender accuracy %"],
                  [[s["monitor"], s["patience"], plus_minus(s["epochs_run"]), plus_minus(s["val_age_mae"]),
                    plus_minus(s["val_gender_accuracy"], 100)] for s in summary])
    report(name, [about], per_run_md, *([means] if len(per_run) > 1 else []))


if __name__ == "__main__":
    main()

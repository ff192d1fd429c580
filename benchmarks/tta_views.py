"""Would averaging over more views than the mirror image pay? Shifts and zooms, scored outside the graph.

    python -m benchmarks.tta_views RUN_DIR [RUN_DIR ...] [--data ../shared/data/train_val] [--shift 4] [--tag NAME]

Each run's hand-in file (which already averages each image with its mirror
image inside the graph) predicts the split's held-out chips, read as the
lecturer reads them, once per view: as they are, shifted by ``--shift`` pixels
each way (zero fill, as ``ZeroPadding2D`` + ``Cropping2D`` would do it inside a
graph), zoomed in (centre crop, resized back) and out (shrunk, reflected
border). Sets of views are then averaged the way ``facekit merge`` averages
members (mean age, sigmoid of the mean gender logit). Averaging outside the
graph costs no export work and gives what an in-graph version would, so a set
of views that does not pay here is not worth building into the file: every
view is one more full forward pass (two, with the mirror) for the lecturer.
Writes benchmarks/results/tta-views[-TAG].json and .md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import TRAIN_VAL, held_out, mean_sd, plus_minus, report, save, table

ZOOM_IN, ZOOM_OUT = 1.08, 0.92


def shifted(x: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Content moved right by ``dx`` and down by ``dy`` pixels; what leaves the frame is lost, zeros come in."""
    out = np.zeros_like(x)
    h, w = x.shape[1:3]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def zoomed(x: np.ndarray, factor: float) -> np.ndarray:
    """Centre zoom by ``factor`` at the same size: > 1 crops and enlarges, < 1 shrinks into a reflected border."""
    import cv2

    n = x.shape[1]
    side = int(round(n / factor)) if factor > 1 else int(round(n * factor))
    o = (n - side) // 2
    out = np.empty_like(x)
    for i, im in enumerate(x):
        if factor > 1:
            out[i] = cv2.resize(im[o:o + side, o:o + side], (n, n), interpolation=cv2.INTER_LINEAR)
        else:
            small = cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA)
            out[i] = cv2.copyMakeBorder(small, o, n - side - o, o, n - side - o, cv2.BORDER_REFLECT_101)
    return out


def views(shift: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    return {
        "as is": lambda x: x,
        f"right {shift}": lambda x: shifted(x, shift, 0), f"left {shift}": lambda x: shifted(x, -shift, 0),
        f"down {shift}": lambda x: shifted(x, 0, shift), f"up {shift}": lambda x: shifted(x, 0, -shift),
        f"zoom {ZOOM_IN}": lambda x: zoomed(x, ZOOM_IN), f"zoom {ZOOM_OUT}": lambda x: zoomed(x, ZOOM_OUT),
    }


def view_sets(names: list[str]) -> dict[str, list[str]]:
    """The sets worth comparing: each view alone, then the plain file joined by shifts, zooms, or all."""
    base, shifts, zooms = names[0], names[1:5], names[5:]
    return {**{n: [n] for n in names}, "as is + 4 shifts": [base, *shifts], "as is + 2 zooms": [base, *zooms],
            "all 7": names}


def averaged(preds: dict[str, tuple[np.ndarray, np.ndarray]], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean age and sigmoid of the mean gender logit, as ``facekit merge`` joins members."""
    from facekit.model.ensemble import mean_gender

    return np.mean([preds[n][0] for n in names], axis=0), mean_gender(np.stack([preds[n][1] for n in names]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--data", type=Path, default=TRAIN_VAL)
    ap.add_argument("--shift", type=int, default=4, help="pixels each shifted view moves (default 4 of 128)")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    from facekit.engine.recipe import TrainConfig
    from facekit.inference.evaluate import score
    from facekit.inference.load import load, run

    val = held_out(args.runs, args.data)
    made = views(args.shift)
    inputs = {name: make(val.x) for name, make in made.items()}
    names = list(made)
    sets = view_sets(names)
    per_run = []
    for run_dir in args.runs:
        cfg = TrainConfig.load(run_dir / "args.json")
        lm = load(run_dir / cfg.export_name, label=run_dir.name)
        preds = {}
        for name, x in inputs.items():
            age, p_female = run(lm, x)
            preds[name] = (np.asarray(age, np.float64).reshape(-1), np.asarray(p_female, np.float64).reshape(-1))
        scores = {}
        for set_name, members in sets.items():
            s = score(*averaged(preds, members), val)
            scores[set_name] = {"mae": s["mae"], "gender_accuracy": s["gender_accuracy"]}
        per_run.append({"run": str(run_dir), "task": cfg.task, "in_graph_flip": cfg.tta, "scores": scores})
        print(run_dir, {k: (round(v["mae"], 3), round(v["gender_accuracy"] * 100, 1)) for k, v in scores.items()})

    rows = []
    for set_name, members in sets.items():
        d_mae = [r["scores"][set_name]["mae"] - r["scores"]["as is"]["mae"] for r in per_run]
        d_acc = [r["scores"][set_name]["gender_accuracy"] - r["scores"]["as is"]["gender_accuracy"] for r in per_run]
        rows.append({"views": set_name, "passes": len(members),
                     "mae": mean_sd([r["scores"][set_name]["mae"] for r in per_run]),
                     "gender_accuracy": mean_sd([r["scores"][set_name]["gender_accuracy"] for r in per_run]),
                     "delta_mae": mean_sd(d_mae), "delta_accuracy": mean_sd(d_acc)})
    name = "tta-views" + (f"-{args.tag}" if args.tag else "")
    result = {"runs": [str(r) for r in args.runs], "validation_images": len(val.names), "shift_px": args.shift,
              "zooms": [ZOOM_IN, ZOOM_OUT], "per_run": per_run, "rows": rows}
    print(f"wrote {save(name, result)}")
    about = (f"{len(val.names)} held-out chips read as cv2.imread / 255; each view through the hand-in file "
             "(mirror averaging already inside); runs: " + ", ".join(str(r) for r in args.runs))
    report(name, [about], table(
        ["views averaged", "forward passes (x2 with the mirror)", "MAE", "gender accuracy %", "Δ MAE vs as is",
         "Δ accuracy vs as is (points)"],
        [[r["views"], r["passes"], plus_minus(r["mae"]), plus_minus(r["gender_accuracy"], 100),
          plus_minus(r["delta_mae"]), plus_minus(r["delta_accuracy"], 100)] for r in rows]))


if __name__ == "__main__":
    main()

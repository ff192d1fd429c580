"""``facekit evaluate``: score models on a labelled folder exactly as the lecturer's test does.

Images are read with ``cv2.imread`` (BGR) and divided by 255, with no
alignment; labels come from the file names through the same parser as prep.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facekit.contract import MAX_AGE, hand_in_scores, predicted_female
from facekit.data.labelled import LabelledSet
from facekit.data.labels import AGE_BANDS, age_band
from facekit.data.split import SPLIT_FILE, read_run_split
from facekit.inference.load import LoadedModel, flip_average, run


def held_out_names(model_paths: Sequence[str | Path], split: str, run: str | Path | None = None,
                   ) -> tuple[list[str] | None, dict[str, Any]]:
    """The file names of the ``split`` part the models' own run recorded (or ``run``'s).

    Returns ``(None, info)`` when no run folder recorded one, so the caller
    re-splits the folder by the template and says so; refuses models whose
    runs were validated on different images.
    """
    if split == "all":
        if run is not None:
            raise ValueError("--run picks the split of a run: use it with --split val or --split train")
        return None, {}
    if run is not None:
        recorded = read_run_split(run)
        if recorded is None:
            raise ValueError(f"{run}: no {SPLIT_FILE} (runs trained before facekit recorded their split have none); "
                             "leave out --run to re-split the folder by the template")
    else:
        found = {str(p): s for p in model_paths if (s := read_run_split(Path(p).parent)) is not None}
        if len({tuple(s.val) for s in found.values()}) > 1:
            raise ValueError("the models were validated on different images: score them one at a time, or pick "
                             f"one run's split with --run ({', '.join(found)})")
        recorded = next(iter(found.values()), None)
    if recorded is None:
        return None, {"source": "template re-split of the folder", "warning": (
            f"no {SPLIT_FILE} beside the models, so the folder was re-split by the template; if the run's cache "
            "lacked some of its files, some of these images were training images")}
    if split == "val" and recorded.full:
        raise ValueError(f"{recorded.source}: that run trained on every image (--full), so it has no held-out images")
    info: dict[str, Any] = {"source": recorded.source}
    if split == "val":
        info["val_twins_in_train"] = recorded.val_twins_in_train
    return recorded.part(split), info


def score(age_pred: np.ndarray, p_female: np.ndarray, data: LabelledSet, worst: int = 10) -> dict[str, Any]:
    err = np.abs(age_pred - data.ages)
    pred_g = predicted_female(p_female).astype(int)
    bands = np.array([age_band(int(a)) for a in data.ages])
    confusion = [[int(((data.genders == t) & (pred_g == p)).sum()) for p in (0, 1)] for t in (0, 1)]
    order = np.argsort(-err)[:worst]

    def scored(rows: np.ndarray | slice = slice(None)) -> tuple[float, float]:  # the one scoring rule, on a part
        return hand_in_scores(data.ages[rows], age_pred[rows], data.genders[rows], p_female[rows])

    mae, accuracy = scored()
    return {
        "n": int(len(err)),
        "mae": mae,
        "gender_accuracy": accuracy,
        "mae_by_band": {b: {"n": int((bands == b).sum()), "mae": scored(bands == b)[0]}
                        for b in AGE_BANDS if (bands == b).any()},
        "accuracy_by_gender": {g: {"n": int((data.genders == v).sum()), "accuracy": scored(data.genders == v)[1]}
                               for g, v in (("male", 0), ("female", 1)) if (data.genders == v).any()},
        "confusion": {"rows_true_cols_pred": ["male", "female"], "matrix": confusion},
        "worst": [{"file": data.names[i], "true_age": int(data.ages[i]), "pred_age": round(float(age_pred[i]), 1),
                   "true_gender": int(data.genders[i]), "p_female": round(float(p_female[i]), 3)}
                  for i in order],
    }


def evaluate(models: list[LoadedModel], data: LabelledSet, tta: bool = False, worst: int = 10,
             ) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The report (JSON-ready) and each model's raw predictions (for plots)."""
    preds = {lm.label: run(lm, data.x, tta=False) for lm in models}
    report: dict[str, Any] = {
        "images": len(data.names),
        "rejected": data.rejected,
        "unreadable": data.unreadable,
        "resized": len(data.resized),
        "damaged": data.damaged,
        "warnings": [lm.note for lm in models if lm.note],
        "models": {},
    }
    if data.damaged:
        report["warnings"].append(f"{len(data.damaged)} damaged images were scored as cv2.imread decodes them (as "
                                  "the lecturer's code would); prep and predict refuse them")
    if data.resized:
        report["warnings"].append(f"{len(data.resized)} images were not 128 x 128 and were resized (cv2 INTER_AREA)")
    for lm in models:
        entry = {"path": str(lm.path), **score(*preds[lm.label], data, worst)}
        if tta:
            tta_pred = flip_average(lm, data.x, preds[lm.label])
            entry["tta"] = {k: v for k, v in score(*tta_pred, data, worst).items()
                            if k in ("mae", "gender_accuracy", "mae_by_band", "accuracy_by_gender")}
        report["models"][lm.label] = entry
    return report, preds


def write_plots(report: dict[str, Any], preds: dict[str, tuple[np.ndarray, np.ndarray]], data: LabelledSet,
                out_dir: Path) -> list[Path]:
    """Predicted-vs-true scatter, MAE by band, and a contact sheet of the worst cases per model."""
    from facekit.data.report import save_grid, tile
    from facekit.utils.figures import pyplot, save_figure

    plt = pyplot()

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    for label, (age, _) in preds.items():
        ax.scatter(data.ages, age, s=6, alpha=0.5, label=f"{label} (MAE {report['models'][label]['mae']:.2f})")
    ax.plot([0, MAX_AGE], [0, MAX_AGE], color="grey", lw=1)
    ax.set(xlabel="true age", ylabel="predicted age", title="Predicted vs true age")
    ax.legend()
    written.append(save_figure(fig, out_dir / "age_scatter.png"))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    width = 0.8 / max(1, len(preds))
    for k, label in enumerate(preds):
        bands = report["models"][label]["mae_by_band"]
        xs = [AGE_BANDS.index(b) + k * width for b in bands]
        ax.bar(xs, [v["mae"] for v in bands.values()], width=width, label=label)
    ax.set_xticks([i + width * (len(preds) - 1) / 2 for i in range(len(AGE_BANDS))], AGE_BANDS)
    ax.set(xlabel="true age band", ylabel="MAE (years)", title="Age MAE by band")
    ax.legend()
    written.append(save_figure(fig, out_dir / "mae_by_band.png"))
    index = {n: i for i, n in enumerate(data.names)}
    for label in preds:
        tiles = []
        for w in report["models"][label]["worst"]:
            img = (data.x[index[w["file"]]][..., ::-1] * 255).round().astype(np.uint8)
            g = "F" if predicted_female(w["p_female"]) else "M"
            t = "F" if w["true_gender"] else "M"
            tiles.append(tile(img, f"{w['true_age']}{t} -> {w['pred_age']:.0f}{g}"))
        if tiles:
            written.append(save_grid(tiles, out_dir / f"worst_{label}.png", cols=5))
    return written


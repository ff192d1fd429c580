"""Run folders, ultralytics-style: each training run leaves everything in one directory.

    runs/<task>/<name>/
        age_gender_A.keras (or _B)  best export, saved whenever validation improves
        last.keras                  training model + optimizer state, every epoch (for --resume)
        args.json                   the full configuration
        history.csv                 per-epoch losses and metrics, train and validation
        metrics.json                best epoch and its validation figures, time, device
        age_loss.png, age_mae.png, gender_loss.png, gender_accuracy.png
        summary.txt                 model.summary() of the exported model
        model.png                   plot_model diagram, when pydot and graphviz are installed
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from facekit.atomic import atomic_path

# (file stem, training key, title, y label); validation keys are "val_" + training key.
CURVES = [
    ("age_loss", "age_dist_loss", "Age loss (age-distribution cross-entropy)", "loss"),
    ("age_mae", "age_mae", "Age MAE", "years"),
    ("gender_loss", "gender_loss", "Gender loss (binary cross-entropy)", "loss"),
    ("gender_accuracy", "gender_accuracy", "Gender accuracy", "accuracy"),
]


def new_run_dir(project: str | Path, task: str, name: str | None = None) -> Path:
    """runs/<task>/<name>, with a number appended if it exists (exp, exp2, exp3, ...)."""
    base = Path(project) / task
    stem = name or "exp"
    candidate = base / stem
    n = 1
    while candidate.exists():
        n += 1
        candidate = base / f"{stem}{n}"
    candidate.mkdir(parents=True)
    return candidate


def read_history(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        # CSVLogger writes "NA" for a metric an epoch did not have.
        return [{k: float(v) for k, v in row.items() if v not in ("", "NA", None)} for row in csv.DictReader(f)]


def plot_curves(history: list[dict[str, float]], run_dir: Path) -> list[Path]:
    """The four learning curves the course asks for, one PNG each."""
    from facekit.figures import pyplot, save_figure

    plt = pyplot()
    written = []
    if not history:
        return written
    epochs = [int(h.get("epoch", i)) + 1 for i, h in enumerate(history)]
    for stem, key, title, ylabel in CURVES:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for k, label in ((key, "training"), (f"val_{key}", "validation")):
            if any(k in h for h in history):
                ax.plot(epochs, [h.get(k, float("nan")) for h in history], marker=".", label=label)
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(save_figure(fig, run_dir / f"{stem}.png"))
    return written


def write_summary(model: Any, run_dir: Path) -> Path:
    lines: list[str] = []
    model.summary(print_fn=lambda s, **_: lines.append(s), expand_nested=False, show_trainable=True)
    dest = run_dir / "summary.txt"
    with atomic_path(dest) as tmp:
        tmp.write_text(_strip_ansi("\n".join(lines)) + "\n")
    return dest


def plot_model(model: Any, run_dir: Path) -> str:
    """model.png via keras.utils.plot_model, or the reason it could not be drawn."""
    import keras

    dest = run_dir / "model.png"
    try:
        with atomic_path(dest) as tmp:
            keras.utils.plot_model(model, to_file=str(tmp), show_shapes=True, show_layer_names=True)
            if tmp.stat().st_size == 0:
                raise OSError("plot_model wrote nothing")
    except (ImportError, OSError, RuntimeError) as exc:
        return ("model.png not drawn: plot_model needs pydot and graphviz "
                f"(pip install pydot; apt install graphviz) ({exc})")
    return str(dest)


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)

"""Run folders, ultralytics-style: each training run leaves everything in one directory.

    runs/<task>/<name>/
        age_gender_A.keras (or _B)  best export, saved whenever validation improves
        last.keras                  training model + optimizer state, every epoch (for --resume)
        state.json                  how many epochs last.keras holds, the time to train them, whether it stopped early
        args.json                   the full configuration
        history.csv                 per-epoch losses and metrics, train and validation
        metrics.json                best epoch and its validation figures, time, device
        age_loss.png, age_mae.png, gender_loss.png, gender_accuracy.png
        summary.txt                 model.summary() of the exported model
        model.png                   plot_model diagram, when pydot and graphviz are installed
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facekit.utils.atomic import atomic_path, write_json
from facekit.utils.modelfiles import sha256_file

LAST = "last.keras"
STATE = "state.json"
MEMBERS_FILE = "members.json"  # what makes a folder an ensemble of runs (``facekit.engine.members``)

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
    while candidate.exists() and not abandoned(candidate):
        n += 1
        candidate = base / f"{stem}{n}"
    if candidate.exists():  # a run that failed before its first epoch: its name is free again
        shutil.rmtree(candidate)
    candidate.mkdir(parents=True)
    return candidate


# What a run writes before its first epoch; a folder holding no more is a run that failed to start.
STARTUP_FILES = frozenset({"args.json", "split.json", "template.json"})


def abandoned(run_dir: Path) -> bool:
    """A run folder whose training never finished an epoch and left nothing else (a bad cache, a crash in
    the first batch): `--name x` reuses it instead of moving on to x2."""
    try:
        return run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= STARTUP_FILES
    except OSError:
        return False


@dataclass
class ResumePoint:
    epochs_done: int
    stopped_early: bool
    train_seconds: float = 0.0  # training time up to that checkpoint (0 for runs older than its record)
    logs: dict[str, float] | None = None  # that epoch's history row, as the checkpoint recorded it


def save_checkpoint(run_dir: Path, model: Any, epochs_done: int, train_seconds: float | None = None,
                    logs: dict[str, Any] | None = None) -> None:
    """Write ``last.keras`` and record in ``state.json`` which epoch it holds, and the training time up to it.

    The epoch is stored rather than inferred from history rows, which can
    disagree with the checkpoint after a kill. The state (with the new file's
    digest and the previous one's) is written before the file is renamed into
    place, so whichever file a kill leaves behind, the state names its epoch.
    The time is kept here too: ``metrics.json`` is written only when a run ends,
    so a killed run (a machine taken back) would otherwise lose the time of
    every session before its resume. So is the epoch's ``logs`` (its history
    row): the checkpoint is written before the row, and a kill between them
    would otherwise leave an epoch whose figures no file holds.
    """
    with atomic_path(run_dir / LAST) as tmp:
        model.save(tmp)
        old = _read_state(run_dir)
        previous = {k: old[k] for k in ("epochs_done", "last_sha256", "train_seconds", "logs") if k in old} \
            if old else None
        if logs is None and old and old.get("epochs_done") == epochs_done:  # a phase's end: the same epoch
            logs = old.get("logs")
        write_json(run_dir / STATE, {"epochs_done": epochs_done, "stopped_early": False,
                                     "last_sha256": sha256_file(tmp), "previous": previous,
                                     **({"train_seconds": round(train_seconds, 1)} if train_seconds is not None
                                        else {}),
                                     **({"logs": _numbers(logs)} if logs else {})})


def _numbers(logs: dict[str, Any]) -> dict[str, float]:
    """An epoch's logs as JSON numbers; a value that is not one (none of facekit's) is left out."""
    row = {}
    for key, value in logs.items():
        try:
            row[key] = float(value)
        except (TypeError, ValueError):
            continue
    return row


def mark_stopped_early(run_dir: Path) -> None:
    state = _read_state(run_dir)
    if state:
        write_json(run_dir / STATE, {**state, "stopped_early": True})


def _read_state(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / STATE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        int(state["epochs_done"]), str(state["last_sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a facekit run state ({exc})") from None
    return state


def resume_point(run_dir: Path) -> ResumePoint:
    """Where a run stopped, from ``state.json`` (or, for runs older than it, the history rows)."""
    if not (run_dir / LAST).is_file():
        raise ValueError(f"{run_dir}: no {LAST}, so no epoch finished and there is nothing to resume; "
                         "start a new run instead")
    state = _read_state(run_dir)
    if state is None:
        return ResumePoint(len(read_history(run_dir / "history.csv")), False)
    digest = sha256_file(run_dir / LAST)
    if digest == state["last_sha256"]:
        return ResumePoint(int(state["epochs_done"]), bool(state.get("stopped_early")),
                           float(state.get("train_seconds") or 0), state.get("logs"))
    previous = state.get("previous") or {}
    if digest == previous.get("last_sha256"):  # killed between the state and the rename
        return ResumePoint(int(previous["epochs_done"]), False, float(previous.get("train_seconds") or 0),
                           previous.get("logs"))
    raise ValueError(f"{run_dir / LAST}: not the checkpoint {STATE} describes (changed by hand?); "
                     "cannot tell which epoch it holds")


def align_history(run_dir: Path, point: ResumePoint) -> bool:
    """Make ``history.csv`` hold one row per epoch ``last.keras`` holds; True if a lost row was put back.

    Rows past the checkpoint (epochs whose checkpoint a kill lost) are dropped: those epochs run again.
    A missing last row (the row is written after the checkpoint, in the same epoch's callbacks) comes
    back from the checkpoint's record, as Keras's CSVLogger writes rows, under the file's own header,
    so the resumed logger appends to a consistent file.
    """
    path = run_dir / "history.csv"
    history = read_history(path)
    lines = path.read_bytes().decode().splitlines(keepends=True) if path.exists() else []  # its own line ends
    if len(history) > point.epochs_done:
        with atomic_path(path) as tmp:
            tmp.write_bytes("".join(lines[: point.epochs_done + 1]).encode())
        return False
    if point.logs is None or len(history) != point.epochs_done - 1:
        return False
    header = next(csv.reader(lines[:1]), None) or ["epoch", *sorted(point.logs)]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        f.write("".join(lines))
        writer = csv.DictWriter(f, fieldnames=header, restval="NA", extrasaction="ignore")
        if not lines:
            writer.writeheader()
        writer.writerow({"epoch": point.epochs_done - 1, **point.logs})
    return True


def read_history(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        # CSVLogger writes "NA" for a metric an epoch did not have.
        return [{k: float(v) for k, v in row.items() if v not in ("", "NA", None)} for row in csv.DictReader(f)]


def plot_curves(history: list[dict[str, float]], run_dir: Path) -> list[Path]:
    """The four learning curves the course asks for, one PNG each."""
    from facekit.utils.figures import pyplot, save_figure

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
    """model.png via keras.utils.plot_model, or the one reason it could not be drawn and how to fix it."""
    import shutil

    import keras

    dest = run_dir / "model.png"
    try:
        import pydot  # noqa: F401
    except ImportError:
        return ("model.png not drawn: plot_model needs pydot and Graphviz: pip install 'facekit[plot]', "
                "and Graphviz from your system's packages (apt install graphviz, brew install graphviz)")
    if shutil.which("dot") is None:
        return ("model.png not drawn: Graphviz's `dot` program is not installed "
                "(apt install graphviz, brew install graphviz, conda install graphviz)")
    try:
        with atomic_path(dest) as tmp:
            keras.utils.plot_model(model, to_file=str(tmp), show_shapes=True, show_layer_names=True)
            if tmp.stat().st_size == 0:
                raise OSError("plot_model wrote nothing")
    except Exception as exc:  # a diagram never ends a training run: Graphviz itself can fail on a large
        # graph ("Trapezoid-table overflow", dot killed by an assertion), which pydot raises as AssertionError
        detail = " ".join(str(exc).split())
        return f"model.png not drawn: Graphviz's dot failed on this graph ({detail[-300:]})"
    return str(dest)


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


TRAIN_LOG = "FACEKIT_TRAIN_LOG"  # a file that gets one line per training that starts (docs/contributing.md)


def log_training(run_dir: Path, task: str, resumed: bool) -> None:
    """Append one line to $FACEKIT_TRAIN_LOG, when set: how the test suite counts its real training runs, in
    every process (one short line per append, so parallel writers do not interleave)."""
    path = os.environ.get(TRAIN_LOG)
    if path:
        line = json.dumps({"run_dir": str(run_dir), "task": task, "resumed": resumed, "pid": os.getpid()})
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

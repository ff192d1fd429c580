"""What every benchmark records beside its figures: machine, commit, date, backend."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from facekit.engine.recipe import TrainConfig
from facekit.utils.machine import PROC_CPUINFO, this_cpu

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TRAIN_VAL = ROOT.parent / "shared" / "data" / "train_val"


def cpu_model(cpuinfo: Path = PROC_CPUINFO) -> str:
    """The CPU's name with AVX-512 and AMX where it has them (facekit.utils.machine): machines of one name
    train two to three times apart with and without them."""
    return this_cpu(cpuinfo).describe()


def code_commit(root: Path = ROOT) -> str:
    """HEAD's short hash, with "+dirty" when a tracked file other than a results file differs from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        # Results files do not make the code dirty: a benchmark that rewrites its own tracked result
        # would otherwise stamp "+dirty" on the figures it just measured at a clean commit.
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                     ":(exclude)benchmarks/results"], cwd=root,
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


# Read once, when the benchmark starts: a two-hour run stamps the code it ran, not the commit HEAD has
# moved on to by the time it writes its figures.
CODE_COMMIT = code_commit()


def environment() -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": CODE_COMMIT,
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, {cpu_model()}",
        "python": platform.python_version(),
    }


def save(name: str, result: dict[str, Any]) -> Path:
    from facekit.utils.atomic import write_json

    RESULTS.mkdir(parents=True, exist_ok=True)
    dest = RESULTS / f"{name}.json"
    write_json(dest, {**environment(), **result})
    return dest


def report(name: str, about: list[str], *blocks: list[str]) -> Path:
    """Write RESULTS/NAME.md: a title, the stamp line, ``about`` and each block after a blank line.

    The stamp comes from ``environment()``, as the JSON's does, so the table a reader opens and the figures
    beside it name the same machine and commit; written atomically, as the JSON is, so an interrupted
    benchmark never leaves a table that stops mid-row over the complete one of its last run.
    """
    from facekit.utils.atomic import atomic_path

    env = environment()
    lines = [f"# {name}", "", f"{env['date']}, commit {env['commit']}, {env['machine']}", *about]
    for block in blocks:
        lines += ["", *block]
    dest = RESULTS / f"{name}.md"
    with atomic_path(dest) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return dest


def model_letter(task: str) -> str:
    """The coursework's name for a task's model ("A" for scratch, "B" for finetune), from facekit.contract."""
    from facekit.contract import KIND_TASKS

    return next(kind for kind, t in KIND_TASKS.items() if t == task)


def table(header: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """A Markdown table's lines: the header, its rule, one line per row (cells already formatted)."""
    return ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def earlier_rows(name: str, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows an earlier invocation wrote to RESULTS/NAME.json, refused if it ran with other settings.

    Long benchmarks run in pieces over several sessions; rows of another epoch count or option set
    under one file would be averaged as if they were alike.
    """
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return []
    earlier = json.loads(path.read_text())
    if (got := {k: earlier.get(k) for k in settings}) != settings:
        raise SystemExit(f"{path} holds runs with other settings ({got}, not {settings}); pick another --tag")
    return earlier["rows"]


def merge_row(rows: list[dict[str, Any]], row: dict[str, Any], key: tuple[str, ...]) -> list[dict[str, Any]]:
    """``rows`` with ``row`` in the place of the one that matches it on ``key`` (a rerun), else appended."""
    same = [all(r[k] == row[k] for k in key) for r in rows]
    return [row if s else r for r, s in zip(rows, same)] + ([] if any(same) else [row])


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2)


def score_model(path: str | Path, val: Any, built_in_flip: bool = False,
                output_order: str = "age,gender") -> dict[str, Any]:
    """Scores of an exported file on held-out raw chips: as it is, with flip averaging of the outputs,
    and with flip averaging built into the graph (features averaged, same weights; what --tta exports).

    A merged file without the built-in flip (a snapshot run exported without ``--tta``) has no single trunk
    to rebuild that graph from, so its in-graph column is left out (a table shows "-"), not guessed.
    """
    from facekit.contract import AGE_DISTRIBUTION
    from facekit.inference.evaluate import evaluate
    from facekit.inference.load import load
    from facekit.model.models import export_from_train

    lm = load(path, label="m")
    report, _ = evaluate([lm], val, tta=True)
    m = report["models"]["m"]
    scores = {"raw_mae": m["mae"], "raw_acc": m["gender_accuracy"],
              "raw_tta_mae": m["tta"]["mae"], "raw_tta_acc": m["tta"]["gender_accuracy"]}
    single = any(layer.name == AGE_DISTRIBUTION for layer in lm.model.layers)  # a merge has its members' only
    if not (built_in_flip or single):
        return scores
    graph = lm if built_in_flip else replace(lm, label="g", model=export_from_train(lm.model, output_order, tta=True))
    g = evaluate([graph], val)[0]["models"][graph.label]
    return {**scores, "raw_graph_tta_mae": g["mae"], "raw_graph_tta_acc": g["gender_accuracy"]}


def held_out(run_dirs: list[Path], data: Path) -> Any:
    """The validation images the runs recorded in their split.json (all must agree), read the lecturer's way.

    Runs from before split.json fall back to re-splitting ``data`` by the template.
    """
    from facekit.data.labelled import load_labelled
    from facekit.inference.evaluate import held_out_names

    names, _ = held_out_names([Path(r) / "model.keras" for r in run_dirs], "val")
    return load_labelled(data, split="val", names=names)


def check_unseen(run_dirs: list[Path], names: list[str]) -> list[bool]:
    """Refuses any run that trained on one of ``names``; per run, whether it validated on some of them.

    A benchmark that scores runs of different splits on one holdout (refits, merges of them) is only
    honest if no member learnt from those chips; one that chose its epoch on them is allowed but flattered,
    so the caller reports it. A run without a recorded split cannot be checked and is refused.
    """
    from facekit.data.split import SPLIT_FILE, read_run_split

    holdout, chose = set(names), []
    for run in run_dirs:
        seen = read_run_split(run)
        if seen is None:
            raise ValueError(f"{run}: no {SPLIT_FILE}, so nothing shows it never trained on the held-out chips")
        if trained := holdout.intersection(seen.train):
            raise ValueError(f"{run}: trained on {len(trained)} of the {len(holdout)} held-out chips "
                             f"(for example {sorted(trained)[0]})")
        chose.append(bool(holdout.intersection(seen.val)))
    return chose


def train_and_score(cfg: Any, val: Any, resume: Path | None = None) -> dict[str, Any]:
    """Train one config (or continue the run in ``resume``) and score its exported file on ``val``.

    Shared by the accuracy and ablation benchmarks so both report the same columns.
    Refuses a ``val`` that is not exactly the run's held-out images.
    """
    from facekit.data.split import read_run_split
    from facekit.engine.resume import finished_run
    from facekit.engine.train import train

    # Finished earlier: score it only.
    res = (finished_run(resume) if resume is not None else None) or train(cfg, resume=resume)
    recorded = read_run_split(res.run_dir)
    if recorded is None or sorted(recorded.val) != sorted(val.names):
        raise ValueError(f"{res.run_dir}: the benchmark's {len(val.names)} validation images are not the run's "
                         "held-out images (a cache missing files splits differently); score with held_out()")
    scores = score_model(res.model_path, val, cfg.tta, cfg.output_order)
    return {
        "epochs_run": res.metrics["epochs_run"], "best_epoch": res.metrics["best_epoch"],
        "train_seconds": res.metrics["train_seconds"],
        "val_aligned_mae": res.metrics["val_age_mae"], "val_aligned_acc": res.metrics["val_gender_accuracy"],
        **scores,
        "backend": res.metrics["backend"], "gpu": res.metrics["gpu"], "run_dir": str(res.run_dir),
        "val_history": validation_history(res.run_dir),
        **last_epoch_scores(res.run_dir, cfg, val, res.metrics["best_epoch"], scores),
    }


def last_epoch_scores(run_dir: Path, cfg: Any, val: Any, best_epoch: int | None,
                      best_scores: dict[str, Any]) -> dict[str, Any]:
    """The raw-chip score of the run's last epoch too (``last.keras``, exported as training exports).

    The kept epoch is the only other one whose weights exist, so this is the second point a monitor
    study gets per run (``benchmarks.monitors`` has every epoch's validation figures, not their raw
    scores). An EMA run's ``last.keras`` holds the raw weights and, in its optimizer, the averages: the
    averages are scored, as that run's hand-in file would hold them.
    """
    from facekit.engine.callbacks import averaged_weights
    from facekit.engine.resume import load_checkpoint
    from facekit.engine.runs import LAST, resume_point
    from facekit.model.export import save_hand_in
    from facekit.model.models import export_from_train

    if not (run_dir / LAST).is_file():
        return {}
    last = resume_point(run_dir).epochs_done
    # A snapshot run keeps its last epoch, but its file is the cycles' merge: the last epoch alone is scored.
    if last == best_epoch and cfg.snapshots <= 1:
        return {"last_epoch": last, "raw_last_mae": best_scores["raw_mae"], "raw_last_acc": best_scores["raw_acc"]}
    dest = run_dir / f"last-epoch-{cfg.export_name}"
    model = load_checkpoint(run_dir)
    with averaged_weights(model, cfg.ema):
        save_hand_in(export_from_train(model, cfg.output_order, cfg.tta), dest)
    scores = score_model(dest, val, cfg.tta, cfg.output_order)
    return {"last_epoch": last, "raw_last_mae": scores["raw_mae"], "raw_last_acc": scores["raw_acc"]}


def validation_history(run_dir: Path) -> dict[str, list[float]]:
    """Every epoch's validation age MAE and gender accuracy, kept in the results: run folders do not outlive
    a session here, and ``benchmarks.monitors`` replays other monitors and patiences from these lists."""
    from facekit.engine.runs import read_history
    from facekit.engine.selection import AGE, GENDER

    rows = read_history(run_dir / "history.csv")
    return {key: [round(r[key], 5) for r in rows if key in r] for key in (AGE, GENDER)}


def all_results() -> dict[str, dict[str, Any]]:
    """Every results file, by name, in name order."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}


def in_defaults(task: str, overrides: dict[str, Any]) -> bool:
    """Whether a lever's ``--set`` overrides are what ``task`` trains with today (a default has absorbed it).

    A cache or teacher is a path standing for data, not a recipe value: never a default.
    """
    base = TrainConfig.for_task(task)
    return bool(overrides) and all(k not in ("cache", "teachers")
                                   and getattr(base, k) == (tuple(v) if isinstance(v, list) else v)
                                   for k, v in overrides.items())


def set_items(overrides: dict[str, Any]) -> list[str]:
    """Overrides as ``--set`` spells them, one ``KEY=VALUE`` each: text as it is, anything else compact JSON."""
    return [f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}" for k, v in overrides.items()]


def set_args(overrides: dict[str, Any]) -> str:
    return " ".join(set_items(overrides))


def pct(x: float) -> str:
    """A fraction as the results tables print it: ``0.933`` -> ``93.3 %``."""
    return f"{100 * x:.1f} %"


def mean_sd(values: list[float]) -> dict[str, float]:
    import statistics

    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def plus_minus(stats: dict[str, float], scale: float = 1) -> str:
    """``mean_sd``'s result as a table cell: ``5.47 ± 0.12`` (``scale`` 100 for percentages)."""
    return f"{stats['mean'] * scale:.2f} ± {stats['sd'] * scale:.2f}"

"""docs/results.md and README's results table, generated from benchmarks/results/*.json.

    python -m benchmarks.results_page           # rewrite both
    python -m benchmarks.results_page --check   # exit 1 when either is stale (the tests run this)

Figures are never typed by hand: every number on the page is read from a
results file, which records the machine, commit and date it was measured on.
What this module declares is which files make up a row ("Model B's defaults
are these three seeds"), never a figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, ROOT, all_results, mean_sd, model_letter, pct, set_args, table
from benchmarks.levers import levers_block
from benchmarks.speed_page import benchmark_of, speed_block
from facekit.utils.atomic import atomic_path

PAGE = ROOT / "docs" / "results.md"
README = ROOT / "README.md"
BEGIN, END = "<!-- results:begin (python -m benchmarks.results_page) -->", "<!-- results:end -->"

# Targets of the accuracy work (held-out raw chips read as cv2.imread / 255, mean of 3 seeds).
TARGETS = {"scratch": (5.0, 0.925), "finetune": (4.8, 0.935)}


@dataclass(frozen=True)
class Glance:
    """One row of the at-a-glance table: which results files make it up, never a figure.

    ``members`` picks a merge's row of an ensemble file (else the row is the mean of the files' seeds);
    ``file_cost`` names the ensemble file whose one-member row measured one such file's size and speed.
    """

    what: str
    task: str
    files: tuple[str, ...]
    members: int | None = None
    file_cost: str | None = None


GLANCE = [
    Glance("defaults (60 epochs), 3 seeds", "scratch", ("accuracy-long", "accuracy-long-seed1", "accuracy-long-seed2"),
           file_cost="ensemble-a60-refit"),
    Glance("best file: 3 runs merged (`facekit merge`)", "scratch", ("ensemble-a60-refit",), members=3),
    Glance("`--members 2 --refit`", "scratch", ("ensemble-a60-refits",), members=2),
    Glance("defaults (EMA), 3 seeds", "finetune", ("accuracy-ema", "accuracy-ema-seed1", "accuracy-ema-seed2"),
           file_cost="ensemble-b-refit-seeds3"),
    Glance("`--members 2 --refit` (measured before EMA)", "finetune", ("ensemble-b-refit-seeds3",), members=2),
    Glance("`--members 3 --refit` (measured before EMA)", "finetune", ("ensemble-b-refit-seeds3",), members=3),
]


def hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.1f} h"


def training_seconds(run: str, results: dict[str, dict[str, Any]]) -> float | None:
    """What producing the file of run folder ``run`` cost: its own training, plus the split run that chose a
    refit's epoch count (``--refit`` trains both); None when no results file recorded that run."""
    for name, data in results.items():
        if not name.startswith(("accuracy", "refit")):  # other files' rows are not training runs
            continue
        for r in data.get("rows", []):
            if r.get("run_dir") == run:
                return r["train_seconds"]
            if r.get("refit", {}).get("run_dir") == run:
                return r["split"]["train_seconds"] + r["refit"]["train_seconds"]
    return None


def merge_training(ensemble: dict[str, Any], members: int, results: dict[str, dict[str, Any]]) -> float | None:
    """The training of a merge's first ``members`` files, summed; None if any member's is unrecorded."""
    each = [training_seconds(str(Path(f).parent), results) for f in ensemble["files"][:members]]
    return None if None in each else sum(each)


def file_cost(row: dict[str, Any]) -> str:
    return f"{row['ms_per_image']:.0f} ms, {row['megabytes']:.0f} MB"


def target_cell(task: str, mae: float, acc: float) -> str:
    """The target and how far a row is from it: the issue's "done when" asks by how much each target is missed."""
    goal_mae, goal_acc = TARGETS[task]
    mae, points = round(mae, 2), round(100 * acc, 1)  # judged as printed, so the cell agrees with its row
    missed = []
    if mae > goal_mae:
        missed.append(f"MAE by {mae - goal_mae:.2f}")
    goal_points = round(100 * goal_acc, 1)
    if points < goal_points:
        missed.append(f"gender by {goal_points - points:.1f} points")
    verdict = "missed: " + ", ".join(missed) if missed else "met"
    return f"<= {goal_mae} / >= {pct(goal_acc)} ({verdict})"


def glance_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for g in GLANCE:
        if g.members is None:
            runs = [r for n in g.files for r in results[n]["rows"] if r["task"] == g.task]
            mae, acc = mean_sd([r["raw_mae"] for r in runs])["mean"], mean_sd([r["raw_acc"] for r in runs])["mean"]
            train = mean_sd([r["train_seconds"] for r in runs])["mean"]
            (one,) = [r for r in results[g.file_cost]["rows"] if r["members"] == 1] if g.file_cost else [None]
            cost = file_cost(one) if one else "-"
            source = ", ".join(f"[{n}](benchmarks/results/{n}.md)" for n in g.files)
        else:
            data = results[g.files[0]]
            (row,) = [r for r in data["rows"] if r["members"] == g.members]
            mae, acc, cost = row["mae"], row["gender_accuracy"], file_cost(row)
            train = merge_training(data, g.members, results)
            source = f"[{g.files[0]}](benchmarks/results/{g.files[0]}.md)"
        rows.append([f"{model_letter(g.task)}", g.what, f"{mae:.2f}", pct(acc), hours(train), cost,
                     target_cell(g.task, mae, acc), source])
    return rows


def glance_block(results: dict[str, dict[str, Any]]) -> list[str]:
    return table(["model", "what", "MAE (years)", "gender accuracy", "training (2-core CPU)",
                  "inference per image, file size", "target (MAE / gender)", "results"], glance_rows(results))


def accuracy_command(name: str, data: dict[str, Any], row: dict[str, Any]) -> str:
    tag = name.removeprefix("accuracy").lstrip("-")
    sets = set_args(data.get("overrides") or {})
    return (f"`python -m benchmarks.accuracy --tasks {row['task']} --seeds {row['seed']}"
            + (f" --set {sets}" if sets else "") + (f" --tag {tag}" if tag else "") + "`")


def setting(value: Any) -> str:
    """A lever's value for a table cell: a list of files (teachers) by its count, not its paths."""
    if isinstance(value, list) and value and all("/" in str(v) for v in value):
        return f"{len(value)} file{'s' if len(value) > 1 else ''}"
    return json.dumps(value, separators=(",", ":")) if isinstance(value, list) else str(value)


def single_runs(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for name, data in results.items():
        if not name.startswith("accuracy") or "rows" not in data:
            continue
        for r in data["rows"]:
            overrides = (data.get("overrides") or {}).items()
            changed = ", ".join(f"{k}={setting(v)}" for k, v in overrides) or "defaults of the day"
            epochs = f"{r.get('best_epoch', '-')}/{r.get('epochs_run', '-')}"
            rows.append([model_letter(r["task"]), str(r["seed"]), changed, epochs,
                         f"{r['raw_mae']:.2f}", pct(r["raw_acc"]), f"{r.get('train_seconds', 0):,.0f}",
                         f"{data['commit']}", f"[{name}](../benchmarks/results/{name}.md)",
                         accuracy_command(name, data, r)])
    rows.sort(key=lambda x: (x[0], float(x[4])))
    header = ["model", "seed", "changed", "kept/run epochs", "MAE", "accuracy", "train s", "commit", "file", "command"]
    return table(header, rows)


def merges(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for name, data in results.items():
        if not name.startswith("ensemble"):
            continue
        for r in data["rows"]:
            rows.append([model_letter(data["task"]), str(r["members"]), f"{r['mae']:.2f}", pct(r["gender_accuracy"]),
                         f"{r.get('megabytes', '-')}", f"{r.get('ms_per_image', '-')}", data["commit"],
                         f"[{name}](../benchmarks/results/{name}.md)"])
        if split := data.get("split"):  # each output from its own members (`merge --age-from`)
            members = (f"{len(data['files'])}: age from {', '.join(map(str, split['age_from']))}, "
                       f"gender from {', '.join(map(str, split['gender_from']))}")
            rows.append([model_letter(data["task"]), members, f"{split['mae']:.2f}", pct(split["gender_accuracy"]),
                         f"{split['megabytes']}", f"{split['ms_per_image']}", data["commit"],
                         f"[{name}](../benchmarks/results/{name}.md)"])
    return table(["model", "members", "MAE", "accuracy", "MB", "ms/image", "commit", "file"], rows)


def refits(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for name, data in results.items():
        if not name.startswith("refit"):
            continue
        for r in data["rows"]:
            split, full = r["split"], r["refit"]
            rows.append([model_letter(r["task"]), str(r["seed"]), str(r["best_epoch"]),
                         f"{split['raw_mae']:.2f} / {pct(split['raw_acc'])}",
                         f"{full['raw_mae']:.2f} / {pct(full['raw_acc'])}",
                         r.get("commit", data["commit"]), f"[{name}](../benchmarks/results/{name}.md)"])
    return table(["model", "seed", "epochs", "split run", "refit on all", "commit", "file"], rows)


def other_results(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for name, data in results.items():
        if (name.startswith(("accuracy", "ensemble", "refit")) and "rows" in data or name.endswith(".schema")
                or benchmark_of(name)):
            continue
        md = RESULTS / f"{name}.md"
        link = f"[{name}](../benchmarks/results/{name}.md)" if md.exists() else f"`{name}.json`"
        stamp = [str(data.get(key, "-")) for key in ("date", "commit", "machine")]
        rows.append([link, stamp[0][:10], *stamp[1:]])
    return table(["results", "date", "commit", "machine"], rows)


def page(results: dict[str, dict[str, Any]]) -> str:
    glance = [line.replace("](benchmarks/", "](../benchmarks/") for line in glance_block(results)]
    parts = [
        "# Results",
        "",
        "Generated by `python -m benchmarks.results_page` from `benchmarks/results/*.json`; do not edit by hand "
        "(a test fails when this page is stale). Scores are on the 1,000 held-out raw chips of the course template's "
        "split, read as the lecturer reads them (`cv2.imread / 255`, no alignment). Each results file's `.md` "
        "twin says how it was measured; [benchmarks.md](benchmarks.md) says how to run each benchmark.",
        "",
        "## At a glance",
        "",
        "Training is the hours of training behind the file on the 2-core CPU machines its results files name "
        "(a merge: its members' summed; a refit: the split run that chose its epoch count and the refit); a GPU "
        "takes minutes. Inference is the file's time per image in batches of 64 on the ensemble benchmark's "
        "machine, for a seed row one member of that model's merge. A `--members K --refit` row is K refits of "
        "seeds 0, 1, ... merged, each trained on 4,000 chips (`benchmarks.refit`), as the option makes them: A's "
        "of today's defaults, B's of its defaults before EMA became one.",
        "",
        *glance,
        "",
        "## Single runs, best first per model",
        "",
        "`changed` is what differed from the defaults of the day the run was measured (the recipe has changed since "
        "for some rows: the commit says which code ran).",
        "",
        *single_runs(results),
        "",
        "## Refits: the split run, then the same recipe on all 4,000 training chips",
        "",
        *refits(results),
        "",
        "## Merges: several files averaged in one (`facekit merge`)",
        "",
        *merges(results),
        "",
        "## Levers: what each paid",
        "",
        *levers_block(results),
        "",
        "## Speed",
        "",
        "Each speed benchmark's figures, as its results file holds them (how each measures: "
        "[benchmarks.md](benchmarks.md)). A machine's name says AVX-512 where its CPU had it: on the same 2-core "
        "size, those trained two to three times as fast as the ones without (Model A's `train_speed` rows).",
        "",
        *speed_block(results),
        "",
        "## Other measurements (ablations, monitors, partial runs)",
        "",
        *other_results(results),
        "",
    ]
    return "\n".join(parts)


def readme_text(readme: str, results: dict[str, dict[str, Any]]) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{README}: the markers {BEGIN!r} and {END!r} are missing")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + BEGIN + "\n" + "\n".join(glance_block(results)) + "\n" + END + tail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/results.md or README's table is stale")
    args = ap.parse_args(argv)
    results = all_results()  # read once for the page and README's table
    want = {PAGE: page(results), README: readme_text(README.read_text(), results)}
    stale = [p for p, text in want.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"{p.name} is stale: run `python -m benchmarks.results_page`", file=sys.stderr)
        return 1 if stale else 0
    for p, text in want.items():
        with atomic_path(p) as tmp:
            tmp.write_text(text)
        print(f"wrote {p.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

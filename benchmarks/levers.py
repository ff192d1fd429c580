"""Which levers paid: each measured lever against the same seeds of the recipe it changed.

Issue 47 asks the results page to say which levers did not pay. A lever's row pairs each of its runs with the
run of the same seed that lacked it (a lever is judged against the defaults of the day it was measured, not
today's), and judges the mean change against the noise of the 1,000 held-out chips (``verdict``). What is
declared here is which results files measured a lever and which measured its baseline, never a figure;
ablation files (``benchmarks.ablation``, whose baseline trains beside its variants) need no declaration, so the
round-three table (``benchmarks/gpu/round3.sh``) appears on the page as soon as its results file lands.
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from benchmarks.ablation import VARIANTS
from benchmarks.common import all_results, in_defaults, model_letter, pct, set_items, table
from facekit.engine.selection import GENDER_POINT_YEARS, hand_in_score

# findings.md: on the 1,000 held-out chips, one seed's differences under about 0.2 MAE or 1 point of gender
# accuracy are noise. In the scoring rule's units (hand_in_score: years, GENDER_POINT_YEARS a point) that is
# their root sum of squares; a mean over n paired seeds is held to it divided by sqrt(n).
NOISE_MAE, NOISE_POINTS = 0.2, 1.0
NOISE_SCORE = math.hypot(NOISE_MAE, GENDER_POINT_YEARS * NOISE_POINTS)

PAID, NOISE, WORSE = "paid", "within noise", "worse"


@dataclass(frozen=True)
class Lever:
    """A lever measured by full-length runs: the ``files`` that ran with it, the ``baseline`` files that ran the
    recipe it changed. Runs pair by seed; where two baseline files hold a seed, the one listed first is used."""

    task: str
    what: str
    files: tuple[str, ...]
    baseline: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """A lever's paired result: means over ``seeds`` with it and without it."""

    task: str
    what: str
    seeds: tuple[int, ...]
    mae: float
    acc: float
    base_mae: float
    base_acc: float
    default_now: str  # "yes", "no", or "-" where the lever is no training option (a refit, a merge)
    sources: tuple[str, ...]
    name: str = ""  # how the "did not pay" line names it (default: ``what``)
    paired: str = ""  # the seeds cell where it is not the seeds (a merge: its files, held to one seed's noise)
    confirm: tuple[str, ...] = ()  # ``python -m`` arguments that confirm an ablation lever that paid over 3 seeds

    @property
    def score_change(self) -> float:
        """The change in the scoring rule's figure (lower is better): MAE and gender error in one unit."""
        return hand_in_score(self.mae, self.acc) - hand_in_score(self.base_mae, self.base_acc)

    @property
    def verdict(self) -> str:
        return verdict(self.score_change, len(self.seeds))


def verdict(score_change: float, n: int) -> str:
    """Paid or worse when the score moved beyond the noise of n paired seeds, else within noise."""
    band = NOISE_SCORE / math.sqrt(n)
    return PAID if score_change < -band else WORSE if score_change > band else NOISE


A, B = "scratch", "finetune"
RESIDUAL_40 = ("accuracy-residual", "accuracy-residual-seeds12")  # A's defaults before 60 epochs
B_EMA = ("accuracy-ema", "accuracy-ema-seed1", "accuracy-ema-seed2")  # B's defaults today
B_BEFORE_EMA = ("accuracy-valscore-seed0", "accuracy-patience0")  # B's defaults before EMA (seed 1: all 40 epochs)
A_60 = ("accuracy-long", "accuracy-long-seed1", "accuracy-long-seed2")  # A's defaults today

LEVERS = [
    Lever(A, "60 epochs instead of 40", A_60, RESIDUAL_40),
    Lever(A, "EMA weights, at 60 epochs", ("accuracy-long-ema-seed0",), ("accuracy-long",)),
    Lever(A, "EMA weights, at 40 epochs", ("accuracy-ema-a-seed0",), RESIDUAL_40),
    Lever(A, "distillation from one B file (40 epochs)", ("accuracy-distill-b0",), RESIDUAL_40),
    Lever(A, "distillation from three merged B refits (40 epochs)", ("accuracy-distill-refit3",), RESIDUAL_40),
    Lever(A, "wider late stages, 14.4 M parameters (40 epochs)", ("accuracy-wide40-a-seed0",), RESIDUAL_40),
    Lever(B, "all 40 epochs instead of early stopping", ("accuracy-patience0", "accuracy-patience0-seed2"),
          ("accuracy-cpu-full-seed1", "accuracy-cpu-full-seed2")),
    Lever(B, "EMA weights", B_EMA, B_BEFORE_EMA),
    Lever(B, "epoch chosen on the raw held-out chips (before EMA)", ("accuracy-rawval",), B_BEFORE_EMA),
    Lever(B, "mixup (before EMA)", ("accuracy-mixup",), B_BEFORE_EMA),
    Lever(B, "stronger augmentation", ("accuracy-b-strong-seed0", "accuracy-b-strong-seed1",
                                       "accuracy-b-strong-seed2"), B_EMA),
    Lever(B, "CutMix", ("accuracy-b-cutmix-seed0",), B_EMA),
    Lever(B, "CutMix and stronger augmentation", ("accuracy-b-cutmix-strong-seed0",), B_EMA),
    Lever(B, "backbone at 224 px inside (twice the compute)", ("accuracy-b224-seed0",), B_EMA),
    Lever(B, "20 epochs instead of 40", ("accuracy-b20-seed0",), B_EMA),
    # Round three (issue 47), queued in benchmarks/cpu/round3.sh: listed as not measured until their files land.
    Lever(A, "stronger augmentation", ("accuracy-a-strong-seed0",), A_60),
    Lever(A, "CutMix", ("accuracy-a-cutmix-seed0",), A_60),
    Lever(A, "snapshot ensemble: 3 cosine cycles in the same epochs, merged", ("accuracy-a-snapshots-3-seed0",), A_60),
    Lever(A, "snapshot ensemble: 2 cosine cycles in the same epochs, merged", ("accuracy-a-snapshots-2-seed0",), A_60),
    Lever(A, "auxiliary race head in training (weight 0.2)", ("accuracy-a-race-0.2-seed0",), A_60),
    Lever(A, "90 epochs instead of 60", ("accuracy-a-epochs-90-seed0",), A_60),
    Lever(B, "backbone at 0.1 x the heads' learning rate", ("accuracy-b-backbone-lr-0.1-seed0",), B_EMA),
    Lever(B, "layer-wise rates: backbone top at 0.5 x, x 0.95 a layer down", ("accuracy-b-layer-decay-0.95-seed0",),
          B_EMA),
    Lever(B, "snapshot ensemble: 3 cosine cycles in the same epochs, merged", ("accuracy-b-snapshots-3-seed0",), B_EMA),
    Lever(B, "snapshot ensemble: 2 cosine cycles in the same epochs, merged", ("accuracy-b-snapshots-2-seed0",), B_EMA),
    Lever(B, "auxiliary race head in training (weight 0.2)", ("accuracy-b-race-0.2-seed0", "accuracy-b-race-0.2-seed1",
                                                              "accuracy-b-race-0.2-seed2"), B_EMA),
]

# Merges judged against their members alone: (ensemble file, members, what).
MERGES = [
    ("ensemble-a60-refit", 3, "3 files merged (`facekit merge`) against each alone"),
    ("ensemble-a60-refits", 2, "2 refits merged (`--members 2 --refit`) against each alone"),
    ("ensemble-b-refit-seeds3", 2, "2 refits merged (`--members 2 --refit`) against each alone"),
    ("ensemble-b-refit-seeds3", 3, "3 refits merged (`--members 3 --refit`) against each alone"),
]

# Refits judged against their own split run: (refit file, what).
REFITS = [
    ("refit-a", "refit on all 4,000 chips (`--refit`), 40 epochs"),
    ("refit-a60", "refit on all 4,000 chips (`--refit`), 60 epochs"),
    ("refit", "refit on all 4,000 chips (`--refit`), before EMA"),
    ("refit-ema", "refit on all 4,000 chips (`--refit`)"),
]


def by_seed(results: dict[str, dict[str, Any]], names: tuple[str, ...], task: str) -> dict[int, dict[str, Any]]:
    """Each seed's run of ``task`` in the files ``names``, the first file listed winning a seed two hold."""
    seeds: dict[int, dict[str, Any]] = {}
    for name in names:
        for row in results[name]["rows"]:
            if row["task"] == task:
                seeds.setdefault(row["seed"], row)
    return seeds


def outcome(task: str, what: str, pairs: list[tuple[int, dict[str, Any], dict[str, Any]]], default_now: str,
            sources: tuple[str, ...], **more: str) -> Outcome:
    """``pairs``: (seed, with the lever, without it), each row holding ``raw_mae`` and ``raw_acc``."""
    def mean(side: int, key: str) -> float:
        return statistics.fmean(p[side][key] for p in pairs)
    return Outcome(task, what, tuple(p[0] for p in pairs), mean(1, "raw_mae"), mean(1, "raw_acc"),
                   mean(2, "raw_mae"), mean(2, "raw_acc"), default_now, sources, **more)


def pending(results: dict[str, dict[str, Any]]) -> list[Lever]:
    """Declared levers none of whose results files exists yet (queued, not measured)."""
    return [lever for lever in LEVERS if not any(f in results for f in lever.files)]


def declared(results: dict[str, dict[str, Any]]) -> Iterator[Outcome]:
    waiting = pending(results)
    for lever in LEVERS:
        if lever in waiting:
            continue
        files = tuple(f for f in lever.files if f in results)  # a series whose later seeds have not run yet
        with_it, without = by_seed(results, files, lever.task), by_seed(results, lever.baseline, lever.task)
        pairs = [(s, with_it[s], without[s]) for s in sorted(with_it) if s in without]
        if not pairs:
            raise ValueError(f"lever {lever.what!r}: no seed of {files} is in {lever.baseline}")
        overrides = results[files[0]].get("overrides") or {}
        yield outcome(lever.task, lever.what, pairs, "yes" if in_defaults(lever.task, overrides) else "no",
                      (*files, *lever.baseline))
    for name, members, what in MERGES:
        data = results[name]
        (row,) = [r for r in data["rows"] if r["members"] == members]
        merged = {"raw_mae": row["mae"], "raw_acc": row["gender_accuracy"]}
        alone = {"raw_mae": row["alone_mae"]["mean"], "raw_acc": row["alone_accuracy"]["mean"]}
        yield outcome(data["task"], what, [(0, merged, alone)], "-", (name,), paired=f"{members} files")
    for name, what in REFITS:
        rows = results[name]["rows"]
        for task in dict.fromkeys(r["task"] for r in rows):
            pairs = [(r["seed"], r["refit"], r["split"]) for r in rows if r["task"] == task]
            yield outcome(task, what, pairs, "-", (name,))


CONFIRM_SEEDS = ("0", "1", "2")


def round_of(name: str) -> str:
    """An ablation file's tag, which prefixes its confirmation series' tags: ablation-round3 -> round3."""
    return name.removeprefix("ablation").lstrip("-") or "ablation"


def confirm_argv(task: str, tag: str, overrides: dict[str, Any] | None = None) -> tuple[str, ...]:
    """``python -m`` arguments of a 3-seed full-length series of ``task``, with ``overrides`` as ``--set``."""
    sets = ("--set", *set_items(overrides)) if overrides else ()
    return ("benchmarks.accuracy", "--tasks", task, "--seeds", *CONFIRM_SEEDS, *sets, "--tag", tag)


def ablations(results: dict[str, dict[str, Any]]) -> dict[str, list[Outcome]]:
    """Each ablation file's variants against the baseline trained beside them, seed by seed; a variant that
    paid and is not a default names the 3-seed series that confirms it, and once that series and the defaults'
    (``confirmations``) have results files, their verdict follows it."""
    found: dict[str, list[Outcome]] = {}
    for name, data in results.items():
        if not name.startswith("ablation") or "rows" not in data:
            continue
        tag = round_of(name)
        for task in dict.fromkeys(r["task"] for r in data["rows"]):
            base = {r["seed"]: r for r in data["rows"] if r["task"] == task and r["variant"] == "baseline"}
            variants = [v for v in dict.fromkeys(r["variant"] for r in data["rows"] if r["task"] == task)
                        if v != "baseline"]
            for variant in variants:
                rows = [r for r in data["rows"] if r["task"] == task and r["variant"] == variant]
                pairs = [(r["seed"], r, base[r["seed"]]) for r in sorted(rows, key=lambda r: r["seed"])
                         if r["seed"] in base]
                if not pairs:
                    continue
                change, overrides, _ = VARIANTS.get(variant, (variant, {}, ()))
                recipe = not any(k in ("cache", "teachers") for k in overrides)
                now = "yes" if recipe and in_defaults(task, overrides) else "no"
                got = outcome(task, f"`{variant}`: {change}", pairs, now, (name,), name=f"`{variant}`")
                if not (recipe and got.verdict == PAID and now == "no" and len(got.seeds) < 3):
                    found.setdefault(name, []).append(got)
                    continue
                found.setdefault(name, []).append(replace(got, confirm=confirm_argv(task, f"{tag}-{variant}",
                                                                                   overrides)))
                series, defaults = f"accuracy-{tag}-{variant}", f"accuracy-{tag}-defaults"
                if series in results and defaults in results:
                    with_it, without = by_seed(results, (series,), task), by_seed(results, (defaults,), task)
                    if paired := [(s, with_it[s], without[s]) for s in sorted(with_it) if s in without]:
                        found[name].append(outcome(task, f"`{variant}`, confirmed at full length", paired, now,
                                                   (series, defaults), name=f"`{variant}` (confirmed)"))
    return found


def confirmations(results: dict[str, dict[str, Any]], name: str) -> list[tuple[str, ...]]:
    """What confirms ablation file ``name``'s paid levers: per model, its defaults over the same seeds on the
    same machine first (the series each lever is judged against), then each lever's own series."""
    levers = [o.confirm for o in ablations(results).get(name, []) if o.confirm]
    tasks = dict.fromkeys(argv[argv.index("--tasks") + 1] for argv in levers)
    return [*(confirm_argv(task, f"{round_of(name)}-defaults") for task in tasks), *levers]


def lever_table(outcomes: list[Outcome], confirm: bool = False) -> list[str]:
    def cells(o: Outcome) -> list[str]:
        links = ", ".join(f"[{n}](../benchmarks/results/{n}.md)" for n in o.sources)
        row = [model_letter(o.task), o.what, o.paired or ",".join(map(str, o.seeds)), f"{o.mae:.2f} / {pct(o.acc)}",
               f"{o.base_mae:.2f} / {pct(o.base_acc)}",
               f"{o.mae - o.base_mae:+.2f} / {100 * (o.acc - o.base_acc):+.1f}", f"{o.score_change:+.2f}",
               o.verdict, o.default_now, links]
        return [*row, f"`python -m {shlex.join(o.confirm)}`" if o.confirm else "-"] if confirm else row
    header = ["model", "lever", "seeds", "with it", "without", "change: MAE / points", "score change", "verdict",
              "default now", "results"]
    return table([*header, "confirm at full length, 3 seeds"] if confirm else header, map(cells, outcomes))


def did_not_pay(outcomes: list[Outcome]) -> str:
    names = [f"{o.name or o.what} ({model_letter(o.task)})" for o in outcomes if o.verdict != PAID]
    return "; ".join(names) if names else "none"


def seed_spread(results: dict[str, dict[str, Any]]) -> float:
    """Two standard deviations of the score difference between two seeds of one recipe, from the pooled spread
    of each model's 3-seed defaults: what the noise band should cover if it is right."""
    variances = []
    for task, files in ((A, A_60), (B, B_EMA)):
        scores = [hand_in_score(r["raw_mae"], r["raw_acc"]) for r in by_seed(results, files, task).values()]
        variances.append(statistics.variance(scores))
    return 2 * math.sqrt(2 * statistics.fmean(variances))


def levers_block(results: dict[str, dict[str, Any]]) -> list[str]:
    """The results page's "Levers" section."""
    mine = list(declared(results))
    lines = [
        "Each lever against the same seeds of the recipe it changed, on the held-out raw chips (against the "
        "defaults of the day it was measured: the baseline files say which). A refit is judged against its own "
        "split run, a merge against the mean of its members alone. The verdict reads the change in the scoring "
        f"rule that picks each run's epoch (`val_score`: age MAE plus {GENDER_POINT_YEARS} years per point of "
        "gender error; lower is better) against the noise of 1,000 chips (findings.md: "
        f"{NOISE_MAE} MAE and {NOISE_POINTS:.0f} point for one seed, {NOISE_SCORE:.2f} in the score, divided by "
        f"the square root of the seeds paired; two standard deviations of the difference between two seeds of "
        f"one recipe, from the spread of each model's 3-seed defaults, come to {seed_spread(results):.2f}): "
        f"**{PAID}** below it, **{WORSE}** above it, else **{NOISE}**. "
        "A lever is made a default by three seeds that agree, not by one; `benchmarks/levers.py` declares the "
        "pairs.",
        "",
        *lever_table(mine),
        "",
        f"Did not pay (within noise or worse): {did_not_pay(mine)}.",
    ]
    if waiting := pending(results):
        lines += ["", "Not measured yet (queued in `benchmarks/cpu/round3.sh`, seed 0 at full length on a CPU; "
                  "`benchmarks/gpu/round3.sh` measures them on a GPU): "
                  + "; ".join(f"{lever.what} ({model_letter(lever.task)})" for lever in waiting) + "."]
    for name, outcomes in ablations(results).items():
        epochs = results[name].get("epochs_override")
        length = f"{epochs}-epoch runs: a screen, not a verdict" if epochs else "full-length runs"
        lines += ["", f"### {name} ({length}; a baseline trained beside them; all exported without the in-graph "
                  "flip)", "", *lever_table(outcomes, confirm=True), "",
                  f"Did not pay (within noise or worse): {did_not_pay(outcomes)}."]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--confirm", metavar="ABLATION",
                    help="print, one a line, the commands that confirm the levers that paid in "
                    "benchmarks/results/ABLATION.json over 3 seeds (benchmarks/gpu/confirm.sh runs them)")
    args = ap.parse_args(argv)
    results = all_results()
    if args.confirm:
        if args.confirm not in results:
            ap.error(f"no benchmarks/results/{args.confirm}.json")
        for command in confirmations(results, args.confirm):
            print(shlex.join(command))
    else:
        print("\n".join(levers_block(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

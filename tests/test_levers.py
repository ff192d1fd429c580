"""The results page's lever verdicts: runs paired by seed, judged by the scoring rule against the noise."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import levers
from benchmarks.common import ROOT, all_results, in_defaults
from benchmarks.levers import NOISE, PAID, WORSE, Lever, verdict
from tests.conftest import cpu_queue_series, recording_commands


def _run(task, seed, mae, acc):
    return {"task": task, "seed": seed, "raw_mae": mae, "raw_acc": acc}


def test_verdict_holds_the_score_change_to_the_noise_of_the_seeds_paired():
    assert math.isclose(levers.NOISE_SCORE, math.hypot(0.2, 0.1))  # 0.2 MAE and 1 point at 0.1 years a point
    assert verdict(-0.25, 1) == PAID and verdict(0.25, 1) == WORSE
    assert verdict(-0.15, 1) == NOISE and verdict(0.15, 1) == NOISE
    assert verdict(-0.15, 3) == PAID and verdict(0.15, 3) == WORSE  # three seeds: the band is 0.13


def test_a_lever_pairs_seeds_and_takes_a_shared_seed_from_the_first_baseline_file(monkeypatch):
    results = {
        "accuracy-x": {"overrides": {"epochs": 60},
                       "rows": [_run("scratch", 0, 5.0, 0.93), _run("scratch", 1, 5.2, 0.92),
                                _run("finetune", 0, 9.9, 0.5)]},
        "accuracy-base": {"rows": [_run("scratch", 0, 5.4, 0.92)]},
        "accuracy-old": {"rows": [_run("scratch", 0, 9.0, 0.80), _run("scratch", 1, 5.6, 0.92),
                                  _run("scratch", 2, 5.5, 0.92)]},
    }
    monkeypatch.setattr(levers, "LEVERS", [Lever("scratch", "longer", ("accuracy-x",), ("accuracy-base",
                                                                                        "accuracy-old"))])
    monkeypatch.setattr(levers, "MERGES", [])
    monkeypatch.setattr(levers, "REFITS", [])
    (got,) = levers.declared(results)
    assert levers.pending(results) == []
    assert got.seeds == (0, 1)  # seed 2 ran without the lever only; the finetune row is another model's
    assert math.isclose(got.mae, 5.1) and math.isclose(got.base_mae, 5.5)  # seed 0's 5.4, not accuracy-old's 9.0
    assert math.isclose(got.score_change, -0.4 - 0.05) and got.verdict == PAID
    assert got.default_now == "yes"  # Model A trains 60 epochs today


def test_a_lever_is_pending_until_one_of_its_files_lands(monkeypatch):
    base = {"accuracy-base": {"rows": [_run("scratch", 0, 5.4, 0.92), _run("scratch", 1, 5.4, 0.92)]}}
    lever = Lever("scratch", "longer", ("accuracy-x0", "accuracy-x1"), ("accuracy-base",))
    monkeypatch.setattr(levers, "LEVERS", [lever])
    monkeypatch.setattr(levers, "MERGES", [])
    monkeypatch.setattr(levers, "REFITS", [])
    assert levers.pending(base) == [lever] and list(levers.declared(base)) == []
    results = {**base, "accuracy-x0": {"rows": [_run("scratch", 0, 5.0, 0.93)]}}  # seed 1 still training
    (got,) = levers.declared(results)
    assert levers.pending(results) == [] and got.seeds == (0,) and got.sources == ("accuracy-x0", "accuracy-base")


def test_a_declared_lever_with_no_seed_in_common_is_refused(monkeypatch):
    results = {"accuracy-x": {"rows": [_run("scratch", 1, 5.0, 0.93)]},
               "accuracy-base": {"rows": [_run("scratch", 0, 5.4, 0.92)]}}
    monkeypatch.setattr(levers, "LEVERS", [Lever("scratch", "longer", ("accuracy-x",), ("accuracy-base",))])
    with pytest.raises(ValueError, match="no seed of"):
        list(levers.declared(results))


def test_ablation_variants_are_judged_against_the_baseline_beside_them():
    def row(variant, seed, mae, acc):
        return {**_run("finetune", seed, mae, acc), "variant": variant}
    results = {"ablation-round9": {"epochs_override": None, "rows": [
        row("baseline", 0, 5.5, 0.93), row("baseline", 1, 5.6, 0.93),
        row("aug-strong", 0, 5.1, 0.935),  # paid, not a default: the page gives the 3-seed command
        row("ema", 0, 5.1, 0.935),  # paid, but B's default already: nothing to confirm
        row("cutmix", 0, 5.9, 0.93),  # worse
        row("race-0.2", 7, 5.0, 0.99),  # no baseline of seed 7: left out
    ]}}
    got = {o.name: o for o in levers.ablations(results)["ablation-round9"]}
    assert set(got) == {"`aug-strong`", "`ema`", "`cutmix`"}
    assert got["`aug-strong`"].verdict == PAID and got["`aug-strong`"].default_now == "no"
    assert got["`aug-strong`"].confirm == ("benchmarks.accuracy", "--tasks", "finetune", "--seeds", "0", "1", "2",
                                           "--set", "augment=strong", "--tag", "round9-aug-strong")
    assert got["`ema`"].default_now == "yes" and not got["`ema`"].confirm
    assert got["`cutmix`"].verdict == WORSE
    block = "\n".join(levers.levers_block({**results, **all_results()}))
    assert "### ablation-round9 (full-length runs" in block
    assert "Did not pay (within noise or worse): `cutmix` (B)." in block
    assert "`python -m benchmarks.accuracy --tasks finetune --seeds 0 1 2 --set augment=strong --tag " \
        "round9-aug-strong`" in block


def test_a_paid_lever_is_confirmed_over_three_seeds_against_the_defaults_run_beside_it(monkeypatch, capsys):
    def row(variant, seed, mae, acc):
        return {**_run("scratch", seed, mae, acc), "variant": variant}
    results = {"ablation-round9": {"epochs_override": None, "rows": [
        row("baseline", 0, 5.5, 0.92), row("race-0.2", 0, 5.1, 0.93), row("snapshots-3", 0, 5.2, 0.93)]}}
    defaults = ("benchmarks.accuracy", "--tasks", "scratch", "--seeds", "0", "1", "2", "--tag", "round9-defaults")
    race = ("benchmarks.accuracy", "--tasks", "scratch", "--seeds", "0", "1", "2", "--set", "race_weight=0.2",
            "--tag", "round9-race-0.2")
    plan = levers.confirmations(results, "ablation-round9")
    assert plan[:2] == [defaults, race] and plan[2][-1] == "round9-snapshots-3"  # the defaults first, once
    monkeypatch.setattr(levers, "all_results", lambda: results)
    assert levers.main(["--confirm", "ablation-round9"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        "benchmarks.accuracy --tasks scratch --seeds 0 1 2 --tag round9-defaults",
        "benchmarks.accuracy --tasks scratch --seeds 0 1 2 --set race_weight=0.2 --tag round9-race-0.2"]
    # Both series measured: the confirmed verdict follows the screen's, seed by seed.
    results["accuracy-round9-defaults"] = {"rows": [_run("scratch", s, 5.3, 0.92) for s in range(3)]}
    results["accuracy-round9-race-0.2"] = {"rows": [_run("scratch", s, 5.3 + 0.01 * s, 0.922) for s in range(3)]}
    outcomes = {o.name: o for o in levers.ablations(results)["ablation-round9"]}
    confirmed = outcomes["`race-0.2` (confirmed)"]
    assert confirmed.seeds == (0, 1, 2) and confirmed.verdict == NOISE  # the screen's gain did not hold
    assert confirmed.sources == ("accuracy-round9-race-0.2", "accuracy-round9-defaults")


def test_in_defaults_compares_with_todays_recipe_of_that_model():
    assert in_defaults("scratch", {"epochs": 60}) and not in_defaults("finetune", {"epochs": 60})
    assert in_defaults("finetune", {"ema": True, "internal_size": 160})
    assert in_defaults("scratch", {"widths": [32, 64, 128, 256, 384]})  # JSON's list against the tuple default
    assert not in_defaults("scratch", {}) and not in_defaults("scratch", {"teachers": []})


def test_the_cpu_queue_and_the_declared_levers_name_the_same_series():
    from benchmarks.accuracy import parse_overrides
    from benchmarks.common import ROOT
    from facekit.engine.recipe import TrainConfig

    script = (ROOT / "benchmarks" / "cpu" / "round3.sh").read_text()
    assert 'series() { "${PYTHON:-python3}" -m benchmarks.accuracy --resume "$@"; }' in script
    queued = {}
    for argv in cpu_queue_series():
        task, tag = argv[argv.index("--tasks") + 1], argv[argv.index("--tag") + 1]
        seed = argv[argv.index("--seeds") + 1]
        assert argv[argv.index("--seeds") + 2] == "--tasks" and tag.endswith(f"-seed{seed}")  # one seed a line
        sets = argv[argv.index("--set") + 1: argv.index("--tag")]
        overrides = parse_overrides(sets)
        TrainConfig.for_task(task, **overrides)  # every lever is a valid option of its model
        assert not in_defaults(task, overrides), f"{tag} is a default already"
        queued[f"accuracy-{tag}"] = (task, overrides)
    results = all_results()
    for name, (task, overrides) in queued.items():
        (lever,) = [lever for lever in levers.LEVERS if name in lever.files]  # judged on the page, once
        assert lever.task == task
        if name in results:  # a file measured already holds this very lever
            assert results[name]["overrides"] == overrides
    # Nothing declared waits forever: each file of a lever that has not measured them all is queued.
    assert {f for lever in levers.LEVERS for f in lever.files if f not in results} <= set(queued)


def _cpu_queue(tmp_path, build):
    """benchmarks/cpu/round3.sh run in ``tmp_path`` (set up by ``build``) with a facekit and a python3 that record
    what they would run; ``python3 -c`` (the queue's question whether a run finished) is answered for real."""
    finished = f'[ "$1" = -c ] && exec {sys.executable} "$@"'
    env, calls = recording_commands(tmp_path, {"facekit": "", "python3": finished})
    work = tmp_path / "work"
    work.mkdir()
    build(work)
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "cpu" / "round3.sh")], cwd=work, env=env, text=True,
                         capture_output=True)
    assert res.returncode == 0, res.stderr
    return calls()


def _finished_run(run: Path) -> None:
    """A run folder the queue's ``finished`` question answers yes for: a hand-in file its metrics.json names."""
    run.mkdir(parents=True)
    (run / "age_gender_B.keras").touch()
    (run / "metrics.json").write_text(json.dumps({"model": str(run / "age_gender_B.keras")}))


@pytest.mark.slow  # the queue asks facekit (a Keras import each time) whether a member finished
def test_the_cpu_queue_trains_the_per_output_merge_members_once_each_and_merges_them(tmp_path):
    merge_line = ("python3 -m benchmarks.ensemble runs/merge/finetune/b-strong-seed0 runs/merge/finetune/b-cutmix-seed0"
                  " --age-from 1 --gender-from 2 --tag cpu-b-strong-age-cutmix-gender")
    calls = _cpu_queue(tmp_path / "new", lambda work: None)
    own = [c for c in calls if not c.startswith("python3 -m benchmarks.accuracy")]
    assert own == [
        "facekit train finetune --augment strong --project runs/merge --name b-strong-seed0 --check-keras none",
        "facekit train finetune --mix cutmix --project runs/merge --name b-cutmix-seed0 --check-keras none",
        merge_line]
    race = calls.index(next(c for c in calls if "--tag b-race-0.2-seed0" in c))
    assert calls.index(own[0]) == race + 1  # right after B's race-head line, before the other levers

    def one_finished_one_stopped(work):
        _finished_run(work / "runs" / "merge" / "finetune" / "b-strong-seed0")
        stopped = work / "runs" / "merge" / "finetune" / "b-cutmix-seed0"
        stopped.mkdir()
        (stopped / "args.json").write_text("{}")
        (stopped / "metrics.json").write_text(json.dumps({"model": "", "interrupted": True}))

    calls = _cpu_queue(tmp_path / "resumed", one_finished_one_stopped)
    assert [c for c in calls if not c.startswith("python3 -m benchmarks.accuracy")] == [
        "facekit train finetune --resume runs/merge/finetune/b-cutmix-seed0 --check-keras none", merge_line]

    def measured(work):
        (work / "benchmarks" / "results").mkdir(parents=True)
        (work / "benchmarks" / "results" / "ensemble-cpu-b-strong-age-cutmix-gender.json").write_text("{}")

    calls = _cpu_queue(tmp_path / "measured", measured)
    assert all(c.startswith("python3 -m benchmarks.accuracy") for c in calls)  # nothing trains twice


@pytest.mark.slow  # as above
def test_the_cpu_queue_merges_strong_and_race_head_age_with_cutmix_gender_once_its_three_runs_are_there(tmp_path):
    runs = ("runs/merge/finetune/b-strong-seed0", "runs/accuracy/finetune/finetune-seed1-b-race-0.2-seed1",
            "runs/merge/finetune/b-cutmix-seed0")
    stack_line = (f"python3 -m benchmarks.ensemble {' '.join(runs)} --age-from 1 2 --gender-from 3"
                  " --tag cpu-b-strong-race-age-cutmix-gender")

    def three_runs(work, measured=()):
        (work / "benchmarks" / "results").mkdir(parents=True)
        for name in ("ensemble-cpu-b-strong-age-cutmix-gender", *measured):
            (work / "benchmarks" / "results" / f"{name}.json").write_text("{}")
        for run in runs:
            _finished_run(work / run)

    calls = _cpu_queue(tmp_path / "ready", three_runs)
    assert [c for c in calls if not c.startswith("python3 -m benchmarks.accuracy")] == [stack_line]
    seed1 = calls.index(next(c for c in calls if "--tag b-race-0.2-seed1" in c))
    assert calls.index(stack_line) == seed1 + 1  # as soon as the race head's seed 1 is trained

    stacked = "ensemble-cpu-b-strong-race-age-cutmix-gender"
    calls = _cpu_queue(tmp_path / "done", lambda work: three_runs(work, [stacked]))
    assert stack_line not in calls  # measured once

    def race_run_missing(work):  # a fresh machine after the seed's results file landed elsewhere
        three_runs(work)
        (work / runs[1] / "metrics.json").unlink()

    calls = _cpu_queue(tmp_path / "fresh", race_run_missing)
    assert stack_line not in calls and "--tag b-race-0.2-seed2" in calls[-1]  # the queue goes on, to its end


def test_the_noise_band_is_checked_against_the_spread_between_seeds():
    results = {name: {"rows": [_run("scratch", seed, 5.0 + 0.1 * seed, 0.9)]}  # scores 6.0, 6.1, 6.2: sd 0.1
               for seed, name in enumerate(levers.A_60)}
    results |= {name: {"rows": [_run("finetune", seed, 5.0, 0.9)]} for seed, name in enumerate(levers.B_EMA)}
    assert math.isclose(levers.seed_spread(results), 2 * math.sqrt(2 * 0.01 / 2))  # B's seeds agree exactly
    assert abs(levers.seed_spread(all_results()) - levers.NOISE_SCORE) < 0.05  # round two's seeds bear it out

"""benchmarks/gpu/session.sh, as the GPU machine runs it: prep from carried face points, the command under
a time limit, what comes back in $OUT. (Installing the wheels is the machine's part; here they are taken
as installed.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from facekit.prep.pipeline import prep
from tests.conftest import ROOT, cpu_queue_series, recording_commands


def _checkout(tmp_path: Path, chip_folder: Path) -> Path:
    """A checkout as session.sh finds it on the machine, with .gpu carried and the wheels installed."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("facekit", "cli", "benchmarks"):
        (work / name).symlink_to(ROOT / name)
    (work / ".gpu" / "models").mkdir(parents=True)  # no MediaPipe files: detecting would fail
    shutil.copytree(chip_folder, work / ".gpu" / "train_val")
    prep(chip_folder, tmp_path / "here.h5", workers=1, save_detections_to=work / ".gpu" / "train_val.detections.json")
    (work / ".site").mkdir()
    (work / ".site" / ".installed").touch()
    (work / ".site" / "facekit_cli").symlink_to(ROOT / "cli")
    return work


def _session(work: Path, out: Path, *command: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "KERAS_BACKEND": "tensorflow"}
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "session.sh"), *command], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_session_preps_from_points_runs_the_command_and_packs_results(chip_folder: Path, tmp_path: Path):
    work = _checkout(tmp_path, chip_folder)
    out = tmp_path / "out"
    write = ("import pathlib; r = pathlib.Path('runs/x'); r.mkdir(parents=True); "
             "(r / 'metrics.json').write_text('{}'); (r / 'last.keras').write_text('weights'); raise SystemExit(3)")
    res = _session(work, out, sys.executable, "-c", write)
    assert res.returncode == 3, res.stdout + res.stderr  # the command's own status comes back
    report = json.loads((work / "cache" / "train_val.report.json").read_text())
    assert report["counts"]["from_detections"] == 12 and not report["unreadable"]
    with tarfile.open(out / "results.tar.gz") as tar:
        assert tar.getnames() == ["runs/x/metrics.json"]  # records travel back, weights do not
    assert (out / "prep.log").exists() and (out / "command.log").exists()

    shutil.rmtree(out)  # the machine empties $OUT before every call
    again = _session(work, out, sys.executable, "-c", "print('second call')")
    assert again.returncode == 0 and "second call" in again.stdout
    assert not (out / "prep.log").exists()  # the cache stayed on the machine: no second prep
    with tarfile.open(out / "results.tar.gz") as tar:
        assert tar.getnames() == []  # nothing new this time


@pytest.mark.slow
def test_a_command_that_fails_before_writing_anything_still_returns_its_status(chip_folder: Path,
                                                                               tmp_path: Path):
    work = _checkout(tmp_path, chip_folder)
    res = _session(work, tmp_path / "out", sys.executable, "-c", "raise SystemExit(5)")  # no runs/ folder at all
    assert res.returncode == 5, res.stdout + res.stderr
    with tarfile.open(tmp_path / "out" / "results.tar.gz") as tar:
        assert tar.getnames() == []


def test_session_refuses_to_start_without_the_packed_files(tmp_path: Path):
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "session.sh"), "true"], cwd=tmp_path,
                         capture_output=True, text=True, env={**os.environ, "OUT": str(tmp_path / "o")})
    assert res.returncode == 2 and "run benchmarks/gpu/pack.sh here" in res.stderr


def test_round_three_plan_names_only_variants_that_apply_and_resumes(tmp_path: Path):
    from benchmarks.ablation import VARIANTS
    from benchmarks.accuracy import parse_overrides

    # A python3 that records each call instead of training. The two B runs the per-output merge reads are
    # there, as on a warm machine after the B line.
    env, recorded = recording_commands(tmp_path, {"python3": ""})
    for variant in ("aug-strong", "cutmix"):
        run = tmp_path / "runs" / "ablation" / "finetune" / f"ablation-round3-finetune-{variant}-seed0"
        run.mkdir(parents=True)
        (run / "age_gender_B.keras").touch()
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "round3.sh")], cwd=tmp_path, text=True,
                         capture_output=True, env=env)
    assert res.returncode == 0, res.stderr
    calls = [line.split()[1:] for line in recorded()]  # each without the python3 that ran it
    ablations = [c for c in calls if c[:2] == ["-m", "benchmarks.ablation"]]
    assert [c[c.index("--task") + 1] for c in ablations] == ["finetune", "scratch", "finetune"]
    planned, baselines = set(), set()
    for call in ablations:
        assert "--resume" in call and call[call.index("--tag") + 1] == "round3"
        assert call[call.index("--data") + 1] == ".gpu/train_val"  # ../shared does not travel
        task, rest = call[call.index("--task") + 1], call[call.index("--variants") + 1:]
        variants = rest[: next((i for i, v in enumerate(rest) if v.startswith("--")), len(rest))]
        if task not in baselines:  # each model's first line trains the baseline its levers are judged against
            assert variants[0] == "baseline" and len(variants) > 1
            baselines.add(task)
        for v in variants:
            assert v in VARIANTS and task in VARIANTS[v][2], f"{v} does not apply to {task}"
            planned.add(f"runs/ablation/{task}/ablation-round3-{task}-{v}-seed0")  # ablation's run names
    (merge,) = [c for c in calls if c[:2] == ["-m", "benchmarks.ensemble"]]
    assert len(set(merge[2:4])) == 2 and set(merge[2:4]) <= planned  # it merges two runs the plan trains
    assert merge[merge.index("--age-from") + 1] == "1" and merge[merge.index("--gender-from") + 1] == "2"
    assert calls.index(merge) == calls.index(ablations[0]) + 1  # after B's runs, before A's
    # The results page says this script measures what the CPU queue has yet to: each queued lever is a variant
    # planned here for its model, or the very accuracy series the queue runs.
    series = {(c[c.index("--tasks") + 1], c[c.index("--tag") + 1]): c for c in calls
              if c[:2] == ["-m", "benchmarks.accuracy"]}
    for argv in cpu_queue_series():
        task, tag = argv[argv.index("--tasks") + 1], argv[argv.index("--tag") + 1]
        sets = argv[argv.index("--set") + 1: argv.index("--tag")]
        overrides = parse_overrides(sets)
        variants = {f"runs/ablation/{task}/ablation-round3-{task}-{v}-seed0" for v, (_, o, _) in VARIANTS.items()
                    if o == overrides}
        if not variants & planned:
            gpu = series.get((task, tag))
            assert gpu is not None, f"{tag}: queued on the CPU, neither a variant nor a series here"
            assert gpu[gpu.index("--set") + 1: gpu.index("--set") + 1 + len(sets)] == sets
            assert "--resume" in gpu and gpu[gpu.index("--data") + 1] == ".gpu/train_val"


def _recording_python(tmp_path: Path, plan: str, status: int = 0) -> tuple[dict[str, str], Callable[[], list[str]]]:
    """A python3 that answers ``-m benchmarks.levers`` with ``plan`` (and ``status``) and records every other call."""
    (tmp_path / "plan").write_text(plan)
    answer = f'[ "$2" = benchmarks.levers ] && cat {tmp_path / "plan"} && exit {status}'
    return recording_commands(tmp_path, {"python3": answer})


def test_confirm_runs_each_planned_series_resumably_on_the_carried_data(tmp_path: Path):
    plan = ("benchmarks.accuracy --tasks scratch --seeds 0 1 2 --tag round3-defaults\n"
            "benchmarks.accuracy --tasks scratch --seeds 0 1 2 --set 'widths=[32,64]' --tag round3-wide\n")
    env, calls = _recording_python(tmp_path, plan)
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "confirm.sh")], cwd=tmp_path, text=True,
                         capture_output=True, env=env)
    assert res.returncode == 0, res.stderr
    assert calls() == [
        "python3 -m benchmarks.accuracy --tasks scratch --seeds 0 1 2 --tag round3-defaults --data .gpu/train_val"
        " --resume",
        "python3 -m benchmarks.accuracy --tasks scratch --seeds 0 1 2 --set widths=[32,64] --tag round3-wide "
        "--data .gpu/train_val --resume"]  # the shell quoting levers prints is undone, one argument each


def test_confirm_with_nothing_to_confirm_says_so_and_a_failed_plan_stops_it(tmp_path: Path):
    env, calls = _recording_python(tmp_path, "")
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "confirm.sh"), "ablation-x"], cwd=tmp_path,
                         text=True, capture_output=True, env=env)
    assert res.returncode == 0 and "no lever of ablation-x paid" in res.stderr
    assert calls() == []
    other = tmp_path / "other"
    other.mkdir()
    env, calls = _recording_python(other, "benchmarks.accuracy --tag x\n", 2)
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "confirm.sh")], cwd=other, text=True,
                         capture_output=True, env=env)
    assert res.returncode == 2 and calls() == []

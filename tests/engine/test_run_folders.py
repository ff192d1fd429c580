"""Run folders a user changed or a run left half-made (issue 45, class 4): each a message that names the file
and says what to do; options given with --resume are applied only where they change how the run runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facekit.engine.recipe import TrainConfig
from facekit.engine.resume import session_options
from facekit.engine.runs import new_run_dir
from tests.conftest import run_cli


def test_options_given_with_resume_apply_only_where_they_change_how_it_runs(tmp_path: Path):
    cfg = TrainConfig.for_task("scratch", cache="c.h5", workers=4)
    notes: list[str] = []
    same = session_options(tmp_path, cfg, {"lr": cfg.lr, "epochs": cfg.epochs}, notes)
    assert same == cfg and notes == []  # the run's own values, given again: nothing to say
    applied = session_options(tmp_path, cfg, {"workers": 1, "check_keras": ("3.8",), "eager": True}, notes)
    assert (applied.workers, applied.check_keras, applied.eager) == (1, ("3.8",), True)
    assert applied.lr == cfg.lr and "--workers 1" in notes[0] and "--check-keras 3.8" in notes[0]
    with pytest.raises(ValueError) as info:
        session_options(tmp_path, cfg, {"lr": 0.5, "augment": "strong", "workers": 1}, [])
    said = str(info.value)
    assert f"--lr 0.5 (the run has {cfg.lr})" in said and f"--augment strong (the run has {cfg.augment})" in said
    assert "--workers" not in said and "start a new run" in said


def test_a_run_that_failed_before_its_first_epoch_frees_its_name(tmp_path: Path):
    failed = tmp_path / "scratch" / "x"
    failed.mkdir(parents=True)
    (failed / "args.json").write_text("{}")
    (failed / "split.json").write_text("{}")
    assert new_run_dir(tmp_path, "scratch", "x") == failed and not (failed / "args.json").exists()
    (failed / "history.csv").write_text("epoch\n0\n")  # a run with an epoch is never reused
    assert new_run_dir(tmp_path, "scratch", "x") == tmp_path / "scratch" / "x2"


@pytest.mark.slow
def test_damaged_run_folders_are_named_with_what_to_do(trained_runs: dict[str, Path], tmp_path: Path):
    """Each case a fresh `facekit train --resume` process with a timeout, on its own copy of a finished run."""
    def copy(name: str) -> Path:
        return Path(shutil.copytree(trained_runs["A"], tmp_path / name))

    not_json, no_last, short_history, other_lr = copy("not_json"), copy("no_last"), copy("short"), copy("lr")
    (not_json / "args.json").write_text("{not json")
    (no_last / "last.keras").unlink()
    history = (short_history / "history.csv").read_text().splitlines(keepends=True)
    (short_history / "history.csv").write_text("".join(history[:2]))  # the header and epoch 1 of 3
    cases = [
        (not_json, [], [f"{not_json / 'args.json'}: not a readable record of the run's options",
                         "restore it, or start a new run"]),
        (no_last, [], [f"{no_last / 'last.keras'}: missing, though 3 epoch(s) finished", "restore it"]),
        (short_history, [], ["says 3 epoch(s) finished, but history.csv has 1 row(s)", "Restore history.csv"]),
        (other_lr, ["--lr", "0.5"], ["--lr 0.5 (the run has", "Leave them out to continue it"]),
    ]

    # In-process: the refusal is decided reading the run folder, before any training.
    results = [run_cli(["train", "scratch", "--resume", str(run_dir), *extra], tmp_path) for run_dir, extra, _ in cases]
    for (run_dir, _, words), res in zip(cases, results):
        said = " ".join(res.stderr.split())
        assert res.returncode == 1, (run_dir.name, res.returncode, said[-1500:])
        assert all(w in said for w in words) and "Traceback" not in said, (run_dir.name, said[-1500:])
    assert json.loads((other_lr / "args.json").read_text())["lr"] != 0.5  # refused before anything changed

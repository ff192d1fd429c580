"""Check versions that fit the machine: a Keras this Python cannot install is a fact about the machine, reported
as such, and `facekit train` exits 0 when training worked and nothing that ran failed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from facekit.contract import CHECK_KERAS, keras_envs
from facekit.engine import run_check
from facekit.engine import train as train_module
from facekit.engine.resume import TrainResult
from facekit.inference.check import Check, CheckReport
from facekit_cli.main import app

runner = CliRunner()


def test_which_keras_each_python_can_install():
    assert keras_envs.requires_python("3.5") == (3, 9) and keras_envs.requires_python("3.13") == (3, 11)
    assert keras_envs.unbuildable("3.13", (3, 10)) == "Keras 3.13 needs Python 3.11+ (this is Python 3.10)"
    assert keras_envs.unbuildable("3.13.2", (3, 11)) is None and keras_envs.unbuildable("3.10", (3, 10)) is None
    assert keras_envs.buildable(CHECK_KERAS, (3, 10)) == ("3.5", "3.8", "3.10")
    assert keras_envs.buildable(CHECK_KERAS, (3, 13)) == CHECK_KERAS


def test_an_unbuildable_version_is_refused_before_any_pip(monkeypatch, tmp_path):
    monkeypatch.setattr(keras_envs, "unbuildable", lambda spec, python=None: f"Keras {spec} needs Python 3.11+")
    monkeypatch.setattr(keras_envs, "_run", lambda *a, **k: pytest.fail("pip ran for a version it cannot install"))
    with pytest.raises(keras_envs.PythonTooOld, match="needs Python 3.11"):
        keras_envs.ensure("3.13", tmp_path)


def test_offline_pip_says_so(monkeypatch):
    class Proc:
        returncode = 1
        stdout = ""
        stderr = ("WARNING: Retrying ... NewConnectionError('Failed to establish a new connection')\n"
                  "ERROR: Could not find a version that satisfies the requirement keras==3.8.*")

    monkeypatch.setattr(keras_envs.subprocess, "run", lambda *a, **k: Proc())
    with pytest.raises(keras_envs.KerasEnvError, match="could not be built: no package index"):
        keras_envs._run(["pip", "install", "keras==3.8.*"], "pip install keras==3.8.*", 10)


def _report(path: Path, failing: bool) -> CheckReport:
    why = keras_envs.unbuildable("3.13", (3, 10))
    return CheckReport(str(path), "A", [
        Check("loads without facekit", True, "plain keras"),
        Check("sane outputs on real images", not failing, "ages 20..40"),
        Check("loads on Keras 3.13", None, f"NOT TESTED: {why}", untested=True),
    ])


@pytest.mark.parametrize("failing", [False, True])
def test_train_exits_0_when_only_untested_versions_remain(failing, tmp_path, monkeypatch):
    """Python 3.10's view of the default versions: 3.13 cannot be built there. The run and every check that ran
    passed: exit 0 with NOT VERIFIED and the command to verify later. A check that failed: exit 1."""
    run = tmp_path / "scratch" / "exp"  # what a finished run reports; the training itself is not the subject
    metrics = {"train_seconds": 12.0, "backend": "tensorflow", "gpu": None, "epochs_run": 2, "best_epoch": 2,
               "monitor": "val_age_mae", "val_age_mae": 9.5, "val_gender_accuracy": 0.7, "val_images": 5}
    result = TrainResult(run, run / "age_gender_A.keras", metrics)
    monkeypatch.setattr(train_module, "train", lambda cfg, callbacks=None, resume=None, given=None: result)
    monkeypatch.setattr(run_check, "check_run", lambda run_dir, versions, status=None: _report(result.model_path,
                                                                                              failing))
    res = runner.invoke(app, ["train", "scratch", "--cache", "unused.h5"], env={"COLUMNS": "240"})
    assert res.exit_code == (1 if failing else 0), res.output
    assert "needs Python 3.11+" in res.output
    if not failing:
        assert "NOT VERIFIED" in res.output
        assert f"facekit check {result.model_path} --keras 3.13" in res.output.replace("\n", "")
    res = runner.invoke(app, ["train", "scratch", "--cache", "unused.h5", "--json"])
    assert res.exit_code == (1 if failing else 0)


def test_doctor_says_which_versions_this_python_can_build(monkeypatch, tmp_path):
    from facekit import doctor

    monkeypatch.setenv(keras_envs.ENV_VAR, str(tmp_path))  # nothing built yet
    found = {f.item: f for f in doctor.keras_env_findings((3, 10))}
    warn = found["hand-in check on this Python"]
    assert warn.status == "warn" and "Keras 3.13 needs Python 3.11+" in warn.detail and "--keras 3.13" in warn.fix
    assert "3.5, 3.8, 3.10" in found["hand-in check Keras versions"].detail
    assert "hand-in check on this Python" not in {f.item for f in doctor.keras_env_findings((3, 13))}

"""An interrupted refit (split run, then the run on every image) finishes with one resume, never retraining."""

import json

import keras
import pytest
from typer.testing import CliRunner

from facekit.engine.refit import refit
from facekit.engine.runs import read_history
from facekit.engine.train import TrainingInterrupted
from facekit_cli.main import app
from tests.conftest import quick_config

runner = CliRunner()


class CtrlC(keras.callbacks.Callback):
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.now = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.now == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_refit_resumes_whichever_run_stopped(tiny_cache, tmp_path):
    cfg = quick_config("scratch", tiny_cache, tmp_path, name="r")
    with pytest.raises(TrainingInterrupted) as info:  # the split run stops in its second epoch
        refit(cfg, lambda epochs: [CtrlC(1)])
    split_dir = info.value.run_dir
    assert split_dir == tmp_path / "scratch" / "r" and len(read_history(split_dir / "history.csv")) == 1

    calls = []  # the split run finishes, then the refit stops before its first batch
    with pytest.raises(TrainingInterrupted, match="no model was saved") as info:
        refit(cfg, lambda epochs: calls.append(epochs) or ([] if len(calls) == 1 else [CtrlC(0)]), resume=split_dir)
    full_dir = info.value.run_dir
    assert full_dir == tmp_path / "scratch" / "r-full" and len(read_history(split_dir / "history.csv")) == 2
    split_time = (split_dir / "age_gender_A.keras").stat().st_mtime_ns

    chosen, result = refit(cfg, resume=full_dir)  # the refit's folder works too: it finds its split run
    assert (split_dir / "age_gender_A.keras").stat().st_mtime_ns == split_time  # reused, not trained again
    assert chosen.run_dir == split_dir and result.run_dir == full_dir
    assert result.metrics["epochs_run"] == chosen.metrics["best_epoch"] == result.metrics["refit_of"]["best_epoch"]
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == ["r", "r-full"]

    full_time = result.model_path.stat().st_mtime_ns
    res = runner.invoke(app, ["train", "scratch", "--resume", str(split_dir), "--refit", "--no-check", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run_dir"] == str(full_dir) and out["refit_of"]["run_dir"] == str(split_dir)
    assert result.model_path.stat().st_mtime_ns == full_time  # nothing trained again
    assert (split_dir / "age_gender_A.keras").stat().st_mtime_ns == split_time


@pytest.mark.slow
def test_refit_of_a_split_run_trained_earlier(tiny_cache, tmp_path):
    opts = ["--cache", str(tiny_cache), "--epochs", "2", "--batch-size", "8", "--steps", "1", "--eager",
            "--workers", "1", "--project", str(tmp_path), "--name", "p", "--no-check", "--json"]
    assert runner.invoke(app, ["train", "scratch", *opts]).exit_code == 0
    split_dir = tmp_path / "scratch" / "p"
    trained_at = (split_dir / "age_gender_A.keras").stat().st_mtime_ns
    res = runner.invoke(app, ["train", "scratch", "--resume", str(split_dir), "--refit", "--no-check", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run_dir"] == str(tmp_path / "scratch" / "p-full") and out["refit_of"]["run_dir"] == str(split_dir)
    assert (split_dir / "age_gender_A.keras").stat().st_mtime_ns == trained_at
    missing = runner.invoke(app, ["train", "scratch", "--resume", str(tmp_path / "nothing"), "--refit"])
    assert missing.exit_code == 1 and "not a run folder" in missing.stderr

"""Bad option values are refused before any work, with a message naming the option (issue 9's first cases)."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from facekit.engine.device import set_precision
from facekit.engine.recipe import TrainConfig
from facekit.engine.train import train
from facekit.inference.predict import predict
from facekit.prep.pipeline import prep
from facekit.prep.workers import PrepOptions
from facekit_cli.main import app
from tests.conftest import quick_config

runner = CliRunner()


def test_cli_refuses_an_unknown_choice_before_any_work():
    """(Numbers out of range: tests/cli/test_numbers.py, each in a process that cannot import TensorFlow.)"""
    res = runner.invoke(app, ["train", "scratch", "--monitor", "val_loss"])
    assert res.exit_code == 2 and "--monitor" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(("override", "message"), [
    ({"limit": 0}, "limit must be at least 1"),
    ({"workers": 0}, "workers must be at least 1"),
    ({"name": "../../x"}, "must be a plain folder name"),
    ({"name": "/tmp/x"}, "must be a plain folder name"),
    ({"weights": "/nonexistent.h5"}, "weights file not found"),
    ({"lr": 0.0}, "lr must be greater than 0, got 0"),
    ({"lr": float("nan")}, "lr must be a finite number, got nan"),
    ({"sigma": float("inf")}, "sigma must be a finite number"),
    ({"mix_alpha": -1.0}, "mix alpha must be greater than 0, got -1"),
    ({"distill_weight": 2.0}, "distill weight must be at most 1, got 2"),
    ({"val_split": 1.0}, "val split must be less than 1, got 1"),
    ({"check_keras": ("2.15",)}, "Keras 3 only"),
])
def test_train_config_refuses_bad_values(tiny_cache, tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        quick_config("finetune", tiny_cache, tmp_path, **override)
    assert not (tmp_path / "finetune").exists()  # no run folder from a run that never started


def test_a_bad_weights_file_leaves_no_run_folder(tiny_cache, tmp_path):
    bad = tmp_path / "weights.h5"
    bad.write_text("not weights")
    with pytest.raises(Exception):  # noqa: B017 - whatever Keras raises on a corrupt file
        train(quick_config("finetune", tiny_cache, tmp_path / "runs", weights=str(bad)))
    assert not (tmp_path / "runs").exists()


def test_mixed_precision_is_refused_on_a_cpu():
    from facekit.engine.device import gpu_name

    if gpu_name():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="needs a GPU"):
        set_precision("mixed")
    assert set_precision("auto") == "float32"


def test_library_calls_check_their_values_too(chip_folder: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="min confidence must be in"):
        PrepOptions(min_confidence=-1)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        prep(chip_folder, tmp_path / "c.h5", workers=0)
    with pytest.raises(ValueError, match="max faces must be at least 1"):
        predict([chip_folder], [], max_faces=0)
    assert TrainConfig.for_task("scratch", name="ok_name").name == "ok_name"


def test_a_cache_missing_a_dataset_is_named(tiny_cache, tmp_path):
    import shutil

    import h5py

    from facekit.data.cache import CacheError

    broken = tmp_path / "broken.h5"
    shutil.copy(tiny_cache, broken)
    with h5py.File(broken, "a") as f:
        del f["gender"]
    with pytest.raises(CacheError, match="no gender dataset"):
        train(quick_config("scratch", broken, tmp_path / "runs"))
    res = runner.invoke(app, ["train", "scratch", "--cache", str(broken), "--project", str(tmp_path / "runs")])
    assert res.exit_code == 1 and "no gender dataset" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_unwritable_outputs_are_messages_not_tracebacks(chip_folder: Path, tiny_models, tmp_path: Path):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")  # root may write anywhere, so a file stands where a folder should be
    cases = [
        (["prep", str(chip_folder), "-o", str(tmp_path), "-w", "1"], "is a directory"),
        (["prep", str(chip_folder), "-o", str(blocker / "c.h5"), "-w", "1"], "a_file"),
        (["predict", str(chip_folder), "-m", str(tiny_models["B"]), "--annotate", str(blocker / "ann")], "a_file"),
        (["evaluate", str(tiny_models["A"]), "--data", str(chip_folder), "--plots", str(blocker / "p")], "a_file"),
    ]
    for args, says in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 1, (args, res.output)
        assert says in res.stderr and "Traceback" not in res.output, (args, res.output)
        assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), res.exception


def test_imagenet_weights_that_cannot_be_downloaded_say_how_to_go_offline(tiny_cache, tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] "
                        "Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    res = runner.invoke(app, ["train", "finetune", "--cache", str(tiny_cache), "--backbone", "efficientnetb0",
                              "--project", str(tmp_path), "--steps", "1", "--epochs", "1"])
    assert res.exit_code == 1 and "could not be downloaded" in res.stderr and "--weights PATH" in res.stderr
    assert "Traceback" not in res.output and not (tmp_path / "finetune").exists()


@pytest.mark.parametrize("content", [b"", b"hello"])
def test_a_broken_model_file_is_named_as_such(tmp_path, chip_folder, content):
    bad = tmp_path / "age_gender_B.keras"
    bad.write_bytes(content)
    for args in (["predict", str(chip_folder), "-m", str(bad)], ["evaluate", str(bad), "--data", str(chip_folder)]):
        res = runner.invoke(app, args)
        assert res.exit_code == 1 and "not a Keras 3 .keras file" in res.stderr, res.output

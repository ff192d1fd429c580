import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facekit_cli.main import app

runner = CliRunner()


@pytest.mark.slow
def test_train_and_check_through_the_cli(tiny_cache, tmp_path, probes_in_process):
    """The options reach the run, the end-of-run check is recorded and names resolve; this environment's
    Keras probes in-process (``probes_in_process``), Keras 3.8 in its own interpreter."""
    res = runner.invoke(app, ["train", "scratch", "--cache", str(tiny_cache), "--epochs", "1", "--batch-size", "8",
                              "--steps", "1", "--eager", "--workers", "1", "--project", str(tmp_path), "--json",
                              "--mix", "mixup", "--mix-alpha", "0.4", "--mean-variance", "--sigma", "3", "--no-tta",
                              "--check-keras", "3.8", "--monitor", "val_score"])
    out = json.loads(res.stdout)
    assert out["task"] == "scratch" and out["epochs_run"] == 1
    # The hand-in file was checked at the end of the run, on Keras 3.8 too, and the result recorded. One step of
    # training gives every face the same answer, which check fails, so the command exits 1 (the run is complete).
    failed = [c for c in out["check"]["checks"] if c["ok"] is False]
    assert res.exit_code == (1 if failed else 0), res.output
    assert all("the same answer for every face" in c["detail"] for c in failed), failed
    assert any(c["name"] == "loads on Keras 3.8" and c["ok"] for c in out["check"]["checks"])
    metrics = json.loads((Path(out["run_dir"]) / "metrics.json").read_text())
    assert metrics["check"] == out["check"]
    args = json.loads((Path(out["run_dir"]) / "args.json").read_text())
    assert (args["mix"], args["mix_alpha"], args["mean_variance"], args["sigma"], args["tta"]) == (
        "mixup", 0.4, True, 3.0, False)
    assert args["monitor"] == out["monitor"] == "val_score" and out["val_score"] is not None
    # README's main command names no run: A is the newest Model A under --project. The file by its path and
    # by that name in one check, as `facekit check A B` does (one fresh interpreter loads both).
    chk = runner.invoke(app, ["check", out["model"], "A", "--project", str(tmp_path), "--json", "--keras", "none"])
    by_path, by_name = json.loads(chk.stdout)
    assert by_path["passed"] is by_name["passed"] is (chk.exit_code == 0), chk.output
    assert by_path["path"] == by_name["path"] == out["model"], chk.output
    none = runner.invoke(app, ["check", "B", "--project", str(tmp_path), "--keras", "none"])
    assert none.exit_code == 1 and "no age_gender_B.keras under" in none.output


def test_train_rejects_options_of_the_other_task(tiny_cache):
    res = runner.invoke(app, ["train", "scratch", "--cache", str(tiny_cache), "--backbone", "resnet50"])
    assert res.exit_code == 1 and "apply to `train finetune` only" in res.stderr
    res = runner.invoke(app, ["train", "finetune", "--cache", str(tiny_cache), "--arch", "residual"])
    assert res.exit_code == 1 and "--arch applies to `train scratch` only" in res.stderr


def test_train_bad_inputs(tmp_path):
    res = runner.invoke(app, ["train", "scratch", "--cache", str(tmp_path / "none.h5")])
    assert res.exit_code == 1 and "no such cache" in res.stderr
    res = runner.invoke(app, ["train", "finetune", "--cache", str(tmp_path / "none.h5"), "--backbone", "vgg99"])
    assert res.exit_code == 1 and "unknown backbone" in res.stderr
    res = runner.invoke(app, ["train", "scratch", "--mix", "blend"])
    assert res.exit_code == 2 and "Invalid value for '--mix'" in res.output and "'blend' is not one of" in res.output
    res = runner.invoke(app, ["train", "scratch", "--teacher", str(tmp_path / "b.keras")])
    assert res.exit_code == 1 and "teacher model not found" in res.stderr
    (tmp_path / "b0.keras").write_bytes(b"")  # several teachers: each is checked, the missing one named
    res = runner.invoke(app, ["train", "scratch", "--teacher", str(tmp_path / "b0.keras"),
                              "--teacher", str(tmp_path / "b1.keras")])
    assert res.exit_code == 1 and f"{tmp_path / 'b1.keras'}: teacher model not found" in res.stderr


def test_check_cli_failure_exit_code(tmp_path, probes_in_process):
    import keras

    inp = keras.Input((64, 64, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    keras.Model(inp, [keras.layers.Dense(1, name="age")(x),
                      keras.layers.Dense(1, activation="sigmoid", name="gender")(x)]).save(tmp_path / "m_B.keras")
    res = runner.invoke(app, ["check", str(tmp_path / "m_B.keras"), "--keras", "none"])
    assert res.exit_code == 1 and "FAIL" in res.stdout and "does NOT meet" in res.stdout


def test_backbones_lists_registry():
    res = runner.invoke(app, ["backbones", "--json"])
    assert res.exit_code == 0
    rows = json.loads(res.stdout)
    assert {r["name"] for r in rows} >= {"mobilenet_075", "convnext_tiny"} and sum(r["default"] for r in rows) == 1


def test_help_lists_choices_groups_model_b_options_and_hides_bool_metavars():
    import re

    from facekit.choices import AUGMENT_STRENGTHS, MIXES

    res = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "160"})
    text = res.output
    assert res.exit_code == 0
    assert f"<{'|'.join(AUGMENT_STRENGTHS)}>" in text and f"<{'|'.join(MIXES)}>" in text
    assert "<auto|mixed|float32>" in text and "<age,gender|gender,age>" in text
    assert "Model B only (train finetune)" in text
    panel = text.split("Model B only (train finetune)")[1]
    assert all(opt in panel for opt in ("--backbone", "--weights", "--internal-size", "--freeze-epochs"))
    assert "<bool>" not in re.sub(r"--(install|show)-completion.*|--help.*", "", text)
    ev = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "160"}).output
    assert "<all|train|val>" in ev
    chk = runner.invoke(app, ["check", "--help"], env={"COLUMNS": "160"}).output
    assert "<tensorflow|jax|torch>" in chk


@pytest.mark.slow
def test_refit_trains_on_everything_for_the_split_runs_best_epoch_count(tiny_cache, tmp_path):
    res = runner.invoke(app, ["train", "scratch", "--cache", str(tiny_cache), "--epochs", "2", "--batch-size", "8",
                              "--steps", "1", "--eager", "--workers", "1", "--project", str(tmp_path), "--name", "r",
                              "--refit", "--no-check", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    split_dir = tmp_path / "scratch" / "r"
    split = json.loads((split_dir / "metrics.json").read_text())
    assert out["run_dir"] == str(tmp_path / "scratch" / "r-full") and Path(out["model"]).is_file()
    assert out["refit_of"] == {"run_dir": str(split_dir), "best_epoch": split["best_epoch"],
                               "val_age_mae": split["val_age_mae"],
                               "val_gender_accuracy": split["val_gender_accuracy"], "val_images": split["val_images"]}
    args = json.loads((tmp_path / "scratch" / "r-full" / "args.json").read_text())
    assert args["full"] is True and args["epochs"] == split["best_epoch"] == out["epochs_run"]
    assert out["train_images"] == split["train_images"] + split["val_images"] and out["val_images"] == 0
    assert json.loads((tmp_path / "scratch" / "r-full" / "metrics.json").read_text())["refit_of"] == out["refit_of"]
    both = runner.invoke(app, ["train", "scratch", "--cache", str(tiny_cache), "--refit", "--full"])
    assert both.exit_code == 1 and "--refit runs the split itself" in both.stderr


@pytest.mark.slow
def test_train_says_what_picked_the_epoch(tiny_cache, tmp_path):
    res = runner.invoke(app, ["train", "scratch", "--cache", str(tiny_cache), "--epochs", "1", "--batch-size", "8",
                              "--steps", "1", "--eager", "--workers", "1", "--project", str(tmp_path), "--no-check",
                              "--monitor", "val_score"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "best epoch 1 by val_score" in res.output and ", score " in res.output


def test_option_callbacks_hand_back_what_every_typer_converts_alike():
    """typer before 0.16 (0.15.4 is pyproject's lower bound) converts a callback's return value again: an enum
    member came back as None (the option silently at its default) and no --teacher crashed. The install
    matrix trains on 0.15.4; this pins the reason."""
    from facekit.engine.recipe import TrainConfig
    from facekit_cli.commands.train import _checker
    from facekit_cli.options import choice_enum

    opts = {name: opt for name, _, opt in TrainConfig.options()}
    augment = choice_enum("Augment", opts["augment"].choices)
    assert _checker("augment", opts["augment"])(augment("strong")) == "strong"
    assert _checker("teachers", opts["teachers"])(None) == []
    assert _checker("lr", opts["lr"])(0.01) == 0.01

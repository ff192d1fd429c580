"""Every train option comes from one declaration (TrainConfig's fields): the CLI, each model's defaults, the
value checks and the docs table."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from facekit.engine import recipe
from facekit.engine.recipe import TrainConfig, option
from facekit_cli.commands import train as train_cmd
from facekit_cli.main import app
from tests.conftest import ROOT

runner = CliRunner()


def test_each_models_defaults_are_the_recipes():
    a, b = TrainConfig.for_task("scratch"), TrainConfig.for_task("finetune")
    assert (a.arch, a.epochs, a.lr, a.patience, a.monitor, a.ema, a.hidden, a.internal_size) == \
        ("residual", 60, 1e-3, 12, "val_age_mae", False, 256, 128)
    assert (b.arch, b.epochs, b.lr, b.patience, b.monitor, b.ema, b.hidden, b.internal_size) == \
        ("plain", 40, 5e-4, 0, "val_score", True, 0, 160)
    assert TrainConfig.for_task("finetune", epochs=7, ema=None).epochs == 7  # None: the model's own default


def test_every_field_is_declared_once():
    for f in dataclasses.fields(TrainConfig):
        assert isinstance(f.metadata.get("option"), recipe.Option), f.name


def test_docs_table_is_generated_from_the_declarations(tmp_path):
    page = ROOT / "docs" / "train.md"
    copy = tmp_path / "train.md"
    copy.write_text(page.read_text())
    assert not train_cmd.write_docs_table(copy), "run `python -m facekit_cli.commands.train`"
    for name, _, opt in TrainConfig.options():
        assert opt.help in page.read_text(), name


def test_a_new_field_appears_in_help_and_table(monkeypatch):
    extended = dataclasses.make_dataclass(
        "Extended", [("backbone_lr_scale", float, option(1.0, "Backbone learning rate as a share of the head's.",
                                                         finetune=0.1, above=0, high=1))],
        bases=(TrainConfig,))
    monkeypatch.setattr(train_cmd, "TrainConfig", extended)
    table = train_cmd.options_table()
    assert "| `--backbone-lr-scale` | 1 scratch, 0.1 finetune | <= 1 and > 0 | Backbone learning rate" in table

    def command(**kw):
        pass
    command.__signature__ = train_cmd._signature()
    command.__annotations__ = {p.name: p.annotation for p in command.__signature__.parameters.values()}
    one = typer.Typer()
    one.command()(command)
    one.command("other")(lambda: None)  # two commands, so the app keeps the command's name
    res = runner.invoke(one, ["command", "--help"], env={"COLUMNS": "240"})
    assert res.exit_code == 0 and "--backbone-lr-scale" in res.output
    assert "1 scratch, 0.1 finetune" in res.output
    bad = runner.invoke(one, ["command", "scratch", "--backbone-lr-scale", "2"], env={"COLUMNS": "240"})
    assert bad.exit_code == 2 and "backbone lr scale must be at most 1" in bad.output


@pytest.mark.parametrize(("args", "says"), [
    (["--lr", "nan"], "lr must be a finite number"),
    (["--lr", "inf"], "lr must be a finite number"),
    (["--lr", "-1"], "lr must be greater than 0"),
    (["--mix-alpha", "-1"], "mix alpha must be greater than 0"),
    (["--ema-momentum", "1"], "ema momentum must be less than 1"),
    (["--distill-weight", "1.5"], "distill weight must be at most 1"),
    (["--val-split", "1"], "val split must be less than 1"),
    (["--sigma", "0"], "sigma must be greater than 0"),
    (["--steps", "-5"], "steps per epoch must be at least 1"),
    (["--limit", "-5"], "limit must be at least 1"),
    (["--patience", "-1"], "patience must be at least 0"),
])
def test_bad_numbers_are_refused_while_parsing(args, says):
    res = runner.invoke(app, ["train", "scratch", *args], env={"COLUMNS": "240"})
    assert res.exit_code == 2, res.output
    assert args[0] in res.output and says in res.output and "Traceback" not in res.output


BLOCK_TENSORFLOW = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'jax'):
            raise ImportError('imported ' + name + ' while parsing options')
sys.meta_path.insert(0, Block())
sys.argv = ['facekit', 'train', 'scratch', '--lr', 'nan']
from facekit_cli.main import main
main()
"""


def test_a_bad_number_exits_before_tensorflow_is_imported():
    res = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert "--lr" in res.stderr and "finite" in res.stderr and "imported" not in res.stderr


@pytest.mark.parametrize("eager", [False, True])
def test_eager_compiles_the_train_step_or_not(eager):
    from facekit.engine.train import build_models, compile_train

    cfg = TrainConfig.for_task("scratch", widths=(8, 8, 8, 8, 8), hidden=8, eager=eager)
    models = build_models(cfg)
    compile_train(models.train, cfg, steps_per_epoch=2, epochs=1)
    assert models.train.run_eagerly is eager
    assert TrainConfig.for_task("finetune").eager is False  # users' runs compile


def test_snapshot_cycles_split_the_epochs_after_the_frozen_ones():
    from facekit.engine.train import plan_phases

    cfg = TrainConfig.for_task("finetune", epochs=10, freeze_epochs=1, snapshots=3)
    assert plan_phases(cfg, has_backbone=True) == [("frozen", 0, 1), ("full", 1, 4), ("full", 4, 7),
                                                   ("full", 7, 10)]
    assert plan_phases(TrainConfig.for_task("scratch", epochs=60, snapshots=2), False) == [("full", 0, 30),
                                                                                          ("full", 30, 60)]
    assert plan_phases(TrainConfig.for_task("scratch", epochs=5), False) == [("full", 0, 5)]  # one: as before
    assert TrainConfig.for_task("scratch", snapshots=3).stop_patience == 0  # restarts raise the loss
    assert TrainConfig.for_task("scratch").stop_patience == 12
    with pytest.raises(ValueError, match="3 snapshots need at least one epoch per cycle"):
        TrainConfig.for_task("finetune", epochs=3, freeze_epochs=1, snapshots=3)


def test_a_snapshot_merge_worse_than_its_best_epoch_is_said(tmp_path):
    from facekit.engine.snapshots import merge_worse_than_single

    # Seen in a rehearsal on 48 chips: the first cycle's file (val MAE 35) dragged the merge to 12.9 against
    # 1.2 for epoch 34 alone.
    record = {"files": ["snapshot-1.keras", "snapshot-2.keras", "snapshot-3.keras"], "val_score": 13.72,
              "best_single": {"best_epoch": 34, "val_score": 1.20}}
    note = merge_worse_than_single(record, tmp_path)
    assert "3 snapshots merged validate worse than epoch 34 alone (val_score 13.72 against 1.20)" in note
    assert str(tmp_path) in note
    assert merge_worse_than_single({**record, "val_score": 1.10}, tmp_path) is None  # the merge is the better
    assert merge_worse_than_single({**record, "val_score": None}, tmp_path) is None  # nothing held out (refit)
    # Model A keeps its epoch on age MAE and logs no val_score: the epoch's is recomputed from its two figures.
    # Round three's A, 3 cycles: merged 5.35 / 92.2 % against epoch 60's 5.35 / 90.9 %, so the merge is better.
    a_epoch = {"best_epoch": 60, "val_age_mae": 5.348, "val_gender_accuracy": 0.909, "val_score": None}
    a_record = {**record, "val_score": 6.133, "best_single": a_epoch}
    assert merge_worse_than_single(a_record, tmp_path) is None
    note = merge_worse_than_single({**a_record, "val_score": 6.40}, tmp_path)
    assert "epoch 60 alone (val_score 6.40 against 6.26)" in note

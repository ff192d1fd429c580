"""``--members K``: K runs of one recipe merged into one checked hand-in file, resumable member by member."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from facekit.contract import rgb_to_input
from facekit.data.cache import read_cache
from facekit.data.split import read_run_split
from facekit.engine.members import train_members
from facekit.engine.recipe import TrainConfig
from facekit.inference.load import load, run
from facekit_cli.main import app
from tests.conftest import quick_config


@pytest.mark.slow
def test_members_train_merge_score_and_resume(tiny_cache, tmp_path):
    cfg = quick_config("scratch", tiny_cache, tmp_path, epochs=1, steps_per_epoch=1, patience=0, name="ens")
    ens = train_members(cfg, 2)
    folders = [tmp_path / "scratch" / n for n in ("ens-member1", "ens-member2")]
    assert ens.run_dir == tmp_path / "scratch" / "ens" and [m.run_dir for m in ens.members] == folders
    assert [json.loads((f / "args.json").read_text())["init_seed"] for f in folders] == [0, 1]
    # The hand-in file is the members' merge: its age is their mean age.
    x = np.random.default_rng(0).uniform(0, 1, (3, 128, 128, 3)).astype("float32")
    ages = [run(load(f / "age_gender_A.keras"), x)[0] for f in folders]
    np.testing.assert_allclose(run(load(ens.model_path), x)[0], np.mean(ages, axis=0), rtol=1e-4)
    # ... scored on the held-out images every member shares, as a plain Keras load of the file reads them.
    data = read_cache(tiny_cache)
    names = read_run_split(folders[0]).val
    assert read_run_split(folders[1]).val == names
    crops = data.images[[list(data.filename).index(n) for n in names]]
    age = np.asarray(keras.models.load_model(ens.model_path).predict(rgb_to_input(crops), verbose=0)[0]).ravel()
    truth = data.age[[list(data.filename).index(n) for n in names]]
    m = json.loads((ens.run_dir / "metrics.json").read_text())
    assert m["val_age_mae"] == pytest.approx(float(np.abs(age - truth).mean()), rel=1e-4)
    assert m["val_images"] == len(names) and [e["init_seed"] for e in m["members"]] == [0, 1]

    # Interrupted while the second member finished: resuming (here through the CLI, which knows the folder by
    # its members.json) reuses the first, finishes the second without training, and merges again.
    (folders[1] / "metrics.json").unlink()
    ens.model_path.unlink()
    with pytest.raises(ValueError, match="--lr 0.5 \\(the run has 0.001\\)"):  # what it trains: as a run's
        train_members(TrainConfig(), resume=ens.run_dir, given={"lr": 0.5})
    out = CliRunner().invoke(app, ["train", "scratch", "--resume", str(ens.run_dir), "--no-check", "--json"])
    assert out.exit_code == 0, out.output
    again = json.loads(out.stdout)
    assert again["val_age_mae"] == pytest.approx(m["val_age_mae"], rel=1e-5) and ens.model_path.is_file()

    # Refit members: each a refit pair, the merge of the refits, with no held-out figures to claim.
    refits = train_members(quick_config("scratch", tiny_cache, tmp_path, epochs=1, steps_per_epoch=1,
                                        patience=0, name="rf"), 2, with_refit=True)
    assert [m.run_dir.name for m in refits.members] == ["rf-member1-full", "rf-member2-full"]
    assert refits.metrics["val_age_mae"] is None and refits.metrics["refit"] is True
    assert all(m["refit_of"]["best_epoch"] == 1 for m in refits.metrics["members"])


def test_members_refuse_what_cannot_be_an_ensemble(tiny_cache, tmp_path):
    cfg = quick_config("scratch", tiny_cache, tmp_path, name="x")
    with pytest.raises(ValueError, match="--members takes 2 or more"):
        train_members(cfg, 1)
    with pytest.raises(ValueError, match="use one of them"):
        train_members(quick_config("scratch", tiny_cache, tmp_path, snapshots=2), 2)
    with pytest.raises(ValueError, match="not --full"):
        train_members(quick_config("scratch", tiny_cache, tmp_path, full=True), 2)
    (tmp_path / "scratch" / "y-member2").mkdir(parents=True)
    with pytest.raises(ValueError, match="y-member2: exists"):
        train_members(quick_config("scratch", tiny_cache, tmp_path, name="y"), 2)
    assert not (tmp_path / "scratch" / "y").exists()  # no empty ensemble folder left behind
    with pytest.raises(ValueError, match="not an ensemble folder"):
        train_members(TrainConfig(), resume=tmp_path / "scratch" / "y-member2")

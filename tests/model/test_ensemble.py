"""`facekit merge`: several models in one file that averages them, still meeting the contract."""

import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from facekit.inference.check import check_model
from facekit.model.ensemble import age_dist_layers, merge, output_members
from facekit.model.export import save_hand_in
from facekit.model.models import build_scratch, export_from_train
from facekit_cli.main import app
from tests.conftest import TRAIN_VAL, contract_failures

runner = CliRunner()


def _member(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    m = build_scratch(widths=(8, 8, 16, 16, 16), hidden=16)
    # Spread the untrained heads so the average is not trivially equal to each member.
    logits = m.train.get_layer("age_logits")
    logits.set_weights([w + np.random.default_rng(seed).normal(0, 0.5, w.shape).astype("float32")
                        for w in logits.get_weights()])
    return export_from_train(m.train, tta=True)


def _sigmoid_of_mean_logit(ps):
    logits = [np.log(p / (1 - p)) for p in (np.asarray(p, np.float64) for p in ps)]
    return 1 / (1 + np.exp(-np.mean(logits, axis=0)))


def _three_merged(tmp_path, **choice):
    """Three different members, their own predictions on random images, and their merge saved and loaded back."""
    members = [_member(0), _member(1), _member(2)]
    x = np.random.default_rng(0).uniform(0, 1, (5, 128, 128, 3)).astype("float32")
    outs = [m.predict(x, verbose=0) for m in members]
    dest = tmp_path / "age_gender_A.keras"
    save_hand_in(merge(members, **choice), dest)
    return outs, dest, keras.models.load_model(dest), x


@pytest.mark.slow
def test_merged_model_averages_ages_and_gender_logits(tmp_path):
    outs, dest, loaded, x = _three_merged(tmp_path)
    age, gender = loaded.predict(x, verbose=0)
    np.testing.assert_allclose(age, np.mean([o[0] for o in outs], axis=0), atol=1e-4)
    np.testing.assert_allclose(gender, _sigmoid_of_mean_logit([o[1] for o in outs]), atol=1e-5)
    assert np.ptp([o[0] for o in outs], axis=0).max() > 0.5  # the members really differ
    rep = check_model(dest, images=sorted(TRAIN_VAL.iterdir())[:3])
    assert not contract_failures(rep), contract_failures(rep)
    fmap = next(c for c in rep.checks if c.name.startswith("feature map"))
    assert "[4, 4]" in fmap.detail  # Model A's rule still holds inside the ensemble


def test_merge_refuses_what_it_cannot_average(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        merge([_member(0)])
    inp = keras.Input((128, 128, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    foreign = keras.Model(inp, [keras.layers.Dense(1, name="age")(x),
                                keras.layers.Dense(1, activation="sigmoid", name="gender")(x)])
    with pytest.raises(ValueError, match="no age_dist layer"):
        merge([_member(0), foreign])


@pytest.mark.slow
def test_each_output_may_average_its_own_members(tmp_path):
    outs, _, loaded, x = _three_merged(tmp_path, age_from=[2], gender_from=[1, 3])
    age, gender = loaded.predict(x, verbose=0)
    np.testing.assert_allclose(age, outs[1][0], atol=1e-4)  # member 2's age alone
    np.testing.assert_allclose(gender, _sigmoid_of_mean_logit([outs[0][1], outs[2][1]]), atol=1e-5)
    assert np.abs(age - outs[0][0]).max() > 0.5  # the members differ, so the choice shows
    names = {layer.name for layer in loaded.layers}
    assert "m1_age_dist" in names and not {"m0_age_dist", "m2_age_dist", "m1_gender"} & names  # unread heads out
    assert [layer.name for layer in age_dist_layers(loaded)] == ["m1_age_dist"]  # what distillation reads


def test_output_members_refuses_what_no_output_would_use():
    assert output_members(3, None, [2]) == ([1, 2, 3], [2])
    for age, gender, message in [([4], None, "numbered 1 to 3"), ([0], None, "numbered 1 to 3"),
                                 ([], None, "at least one member"), ([1, 1], None, "named twice"),
                                 ([1], [2], "member 3 gives neither")]:
        with pytest.raises(ValueError, match=message):
            output_members(3, age, gender)


@pytest.mark.slow
def test_merge_cli(tiny_models, tmp_path, probes_in_process):
    out = tmp_path / "age_gender_B.keras"
    res = runner.invoke(app, ["merge", str(tiny_models["B"]), str(tiny_models["B_swapped"]), "-o", str(out),
                              "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["out"] == str(out)
    res = runner.invoke(app, ["check", str(out), "--keras", "none", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["output_order"] == ["age", "gender"]
    split = tmp_path / "split_age_gender_B.keras"
    res = runner.invoke(app, ["merge", str(tiny_models["B"]), str(tiny_models["B_swapped"]), "-o", str(split),
                              "--age-from", "2", "--gender-from", "1"])
    assert res.exit_code == 0 and "age from member 2, gender from member 1" in res.stdout, res.output
    res = runner.invoke(app, ["merge", str(tiny_models["B"]), str(tiny_models["B_swapped"]), "-o", str(split),
                              "--age-from", "3", "--json"])
    assert res.exit_code == 1 and "numbered 1 to 2" in res.stderr and res.stdout == ""
    res = runner.invoke(app, ["merge", str(tiny_models["A"]), str(tiny_models["B"]), "-o", str(out)])
    assert res.exit_code == 1 and "Model A must stay" in res.stderr
    res = runner.invoke(app, ["merge", str(tiny_models["B"]), str(tmp_path / "none_B.keras"), "-o", str(out)])
    assert res.exit_code == 1 and "no such model file" in res.stderr

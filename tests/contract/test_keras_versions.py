"""Hand-in files load on the lecturer's older Keras, in isolated environments built from the package index,
and predict what this environment predicts.

The first run creates the environments (about 35 s each) under facekit's cache directory; later runs reuse them.
"""

import keras
import pytest
from typer.testing import CliRunner

from facekit.contract import CHECK_KERAS, OLDEST_KERAS, keras_envs
from facekit.inference.check import SAME_BACKEND_TOL, check_model, check_models
from facekit.model.compat import version_tuple
from facekit_cli.main import app
from tests.conftest import TRAIN_VAL, contract_failures

VERSIONS = ("3.5", "3.8", "3.13")  # the oldest supported, Colab's until mid-2025 and since early 2026


@pytest.fixture(scope="module")
def fresh_exports(trained_runs, tmp_path_factory):
    """Tiny A and B trained for a few steps with this environment's Keras and exported the facekit way, a
    merge (what `merge`, `train --members` and `--snapshots` hand in: cloned, renamed layers, Concatenate), and
    a merge whose outputs come from different members (`merge --age-from 1 --gender-from 2`: no Concatenate,
    heads left out)."""
    from facekit.model.export import save_hand_in
    from facekit.model.files import merge_files

    a, b = trained_runs["A"] / "age_gender_A.keras", trained_runs["B"] / "age_gender_B.keras"
    merged = tmp_path_factory.mktemp("merged") / "age_gender_B.keras"
    save_hand_in(merge_files([b, b]), merged)
    split = merged.with_name("split_age_gender_B.keras")
    save_hand_in(merge_files([b, b], age_from=[1], gender_from=[2]), split)
    return [a, b, merged, split]


@pytest.mark.slow
def test_fresh_exports_load_and_agree_on_older_keras(fresh_exports):
    chips = sorted(TRAIN_VAL.iterdir())[:6]
    # Both files in one call, as `facekit check A B` does: one interpreter per Keras version loads both. The
    # base probe runs on JAX as the other environments do, so the bound is the same-backend one.
    reports = check_models(fresh_exports, images=chips, backend="jax", keras_versions=VERSIONS)
    assert [r.path for r in reports] == [str(p) for p in fresh_exports]
    for rep in reports:
        assert not contract_failures(rep) and not rep.untested, (contract_failures(rep), rep.untested)
        found = {c.name: c.detail for c in rep.checks if c.name.startswith("loads on Keras")}
        assert set(found) == {f"loads on Keras {v}" for v in VERSIONS}
        for spec, detail in zip(VERSIONS, found.values()):
            assert f"Keras {spec}." in detail and "same outputs" in detail and "across backends" not in detail
        assert SAME_BACKEND_TOL == {"age": 1e-4, "gender": 1e-4}
    assert OLDEST_KERAS in VERSIONS and OLDEST_KERAS in CHECK_KERAS and "3.13" in CHECK_KERAS  # Colab's


@pytest.mark.slow
@pytest.mark.skipif(version_tuple(keras.__version__) < (3, 15), reason="this Keras writes no 3.15-only keys")
def test_a_plain_save_of_this_keras_fails_there(tmp_path):
    inp = keras.Input((128, 128, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    path = tmp_path / "plain_B.keras"
    keras.Model(inp, [keras.layers.Dense(1, name="age")(x),
                      keras.layers.Dense(1, activation="sigmoid", name="gender")(x)]).save(path)
    rep = check_model(path, keras_versions=("3.8",), isolated=False)  # Keras 3.8 is the fresh process here
    failed = {c.name: c.detail for c in rep.checks if c.ok is False}
    assert "input_axes" in failed["loads on Keras 3.8"] and f"config readable by Keras {OLDEST_KERAS}" in failed


@pytest.mark.slow
def test_an_untested_version_is_never_a_pass(monkeypatch, tiny_models, probes_in_process):
    def offline(spec, root=None, timeout=0):
        raise keras_envs.KerasEnvError("pip install keras==3.8.* failed: no network")

    monkeypatch.setattr(keras_envs, "ensure", offline)
    rep = check_model(tiny_models["A"], keras_versions=("3.8",), isolated=False)
    assert not rep.passed and [c.name for c in rep.untested] == ["loads on Keras 3.8"]
    assert "NOT TESTED" in rep.untested[0].detail and "--keras none" in rep.untested[0].detail
    res = CliRunner().invoke(app, ["check", str(tiny_models["A"]), "--keras", "3.8"])
    assert res.exit_code == 1 and "SKIP" in res.stdout and "NOT VERIFIED" in res.stdout


def test_environment_specs(tmp_path):
    assert keras_envs.parse_specs("3.8, 3.10,3.13.2") == ("3.8", "3.10", "3.13.2")
    assert keras_envs.parse_specs("none") == ()
    with pytest.raises(ValueError, match="Keras 3 only"):
        keras_envs.parse_specs("2.15,3.8")
    assert keras_envs.requirement("3.8") == "keras==3.8.*" and keras_envs.requirement("3.13.2") == "keras==3.13.2"
    assert keras_envs.existing("3.8", tmp_path) is None  # nothing half-built counts: the marker comes last
    (tmp_path / "keras-3.8-py0").mkdir()
    assert keras_envs.existing("3.8", tmp_path) is None
    res = CliRunner().invoke(app, ["check", "x_A.keras", "--keras", "3,8"])
    assert res.exit_code == 1 and "must look like 3.8" in res.stderr


@pytest.mark.slow
def test_an_environment_is_built_once_and_reused(tmp_path):
    env = keras_envs.ensure("3.8", tmp_path)  # a fresh root: really built, with this interpreter's pip
    assert env.keras.startswith("3.8.") and env.python.exists()
    assert keras_envs.ensure("3.8", tmp_path) == env == keras_envs.existing("3.8", tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [env.python.parent.parent.name]
    with pytest.raises(keras_envs.KerasEnvError, match="the package index has no release for .*keras==3.99"):
        keras_envs.ensure("3.99", tmp_path)
    assert keras_envs.existing("3.99", tmp_path) is None  # nothing half-built left behind

"""`check` must fail, with a clear reason, on a model that breaks each rule of the contract.

Rules other than "loads without facekit" are judged in this process (``isolated=False``); that rule and the
lecturer's fresh process are what the Lambda and custom-layer cases, test_train and test_keras_versions check."""

import subprocess
from pathlib import Path
from unittest import mock

import keras
import numpy as np
import pytest
from keras import layers

from facekit.inference.check import check_model, check_models, run_probes
from facekit.model.export import save_hand_in
from tests.conftest import TRAIN_VAL


def _save(model: keras.Model, path: Path) -> Path:
    model.save(path)
    return path


def _two_heads(x, inp, gender_units=1, gender_act="sigmoid"):
    x = layers.GlobalAveragePooling2D()(x)
    age = layers.Dense(1, name="age")(x)
    gender = layers.Dense(gender_units, activation=gender_act, name="gender")(x)
    return keras.Model(inp, [age, gender])


def _conv(inp, pool=8):
    return layers.MaxPooling2D(pool)(layers.Conv2D(4, 3, padding="same")(inp))


@keras.saving.register_keras_serializable(package="facekit_test")
class Custom(layers.Layer):
    def call(self, x):
        return x * 2


def failing(report):
    return {c.name: c.detail for c in report.checks if c.ok is False}


@pytest.mark.slow
def test_good_model_passes_and_roles_from_activation(tmp_path):
    inp = keras.Input((128, 128, 3))
    x = layers.GlobalAveragePooling2D()(_conv(inp, 16))
    # The unnamed age head starts at 30 years: an untrained linear head near 0 could dip below the
    # sanity bound (-1 year) by chance, and this model is meant to be unambiguously good.
    age = layers.Dense(1, name="out_b", bias_initializer=keras.initializers.Constant(30.0))(x)
    m = keras.Model(inp, [layers.Dense(1, activation="sigmoid", name="out_a")(x), age])
    save_hand_in(m, tmp_path / "m_A.keras")  # float32, and without the keys older Keras rejects
    rep = check_model(tmp_path / "m_A.keras", images=sorted(TRAIN_VAL.iterdir())[:3], isolated=False)
    assert rep.passed and rep.kind == "A" and rep.output_order == ["gender", "age"]


@pytest.mark.slow
def test_each_broken_rule_is_named(tmp_path):
    cases = {}
    inp = keras.Input((64, 64, 3))
    cases["input 128 x 128 x 3 float32"] = _two_heads(_conv(inp), inp)
    inp = keras.Input((128, 128, 3))
    cases["gender is one sigmoid unit"] = _two_heads(_conv(inp), inp, gender_units=2, gender_act="softmax")
    inp = keras.Input((128, 128, 3))
    x = layers.Flatten()(layers.MaxPooling2D(8)(layers.Conv2D(4, 3, padding="same")(inp)))  # 16 x 16 map
    cases["feature map before first Dense < 10 x 10"] = keras.Model(
        inp, [layers.Dense(1, name="age")(x), layers.Dense(1, activation="sigmoid", name="gender")(x)])
    inp = keras.Input((128, 128, 3))
    x = layers.GlobalAveragePooling2D()(_conv(inp))
    cases["two outputs of shape (None, 1)"] = keras.Model(inp, layers.Dense(1, activation="sigmoid", name="gender")(x))
    inp = keras.Input((128, 128, 3))
    x = layers.GlobalAveragePooling2D()(_conv(inp))
    cases["sane outputs on real images"] = keras.Model(inp, [
        layers.Dense(1, name="age", bias_initializer=keras.initializers.Constant(-500.0))(x),
        layers.Dense(1, activation="sigmoid", name="gender")(x)])
    for rule, model in cases.items():
        rep = check_model(_save(model, tmp_path / "bad_A.keras"), images=sorted(TRAIN_VAL.iterdir())[:3],
                          isolated=False)
        assert not rep.passed
        assert rule in failing(rep), (rule, failing(rep))


@pytest.mark.slow
def test_lambda_and_custom_layers_fail_to_load_plainly(tmp_path):
    """Three files in one fresh interpreter (``check_models``): each judged on its own, the good one passes."""
    files = []
    for extra in ("lambda", "custom", "plain"):
        inp = keras.Input((128, 128, 3))
        x = layers.Lambda(lambda t: t * 2.0)(inp) if extra == "lambda" else Custom()(inp) if extra == "custom" \
            else inp
        files.append(_save(_two_heads(_conv(x), inp), tmp_path / f"{extra}_B.keras"))
    lam, custom, plain = check_models(files, images=sorted(TRAIN_VAL.iterdir())[:3])
    for rep in (lam, custom):
        assert "load_model failed" in failing(rep)["loads without facekit"], failing(rep)
    assert "loads without facekit" not in failing(plain) and plain.path.endswith("plain_B.keras")


def test_a_dead_probe_interpreter_is_retried_file_by_file(tmp_path):
    """If the shared interpreter dies, each file is probed alone, so every file gets its own verdict."""
    calls = []
    real_run = subprocess.run

    def run(args, **kw):
        calls.append(args[4:])
        return real_run(["false"], **kw)

    files = [tmp_path / "a_A.keras", tmp_path / "b_B.keras"]
    with mock.patch.object(subprocess, "run", run):
        results = run_probes(files)
    assert calls == [[str(f) for f in files], [str(files[0])], [str(files[1])]]
    assert all(not r["loaded"] and "probe process failed (exit 1)" in r["load_error"] for r in results)


def test_probes_share_jaxs_compilation_cache_and_keep_the_users(tmp_path, monkeypatch):
    """Every probe interpreter, any Keras version, is pointed at one persistent JAX cache under facekit's cache
    folder (JAX compiling each initialiser and the predict step is most of a probe's time); a cache the user
    configured wins."""
    envs = []
    real_run = subprocess.run

    def run(args, **kw):
        envs.append(kw["env"])
        return real_run(["false"], **kw)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    with mock.patch.object(subprocess, "run", run):
        run_probes([tmp_path / "a_A.keras"], backend="jax")
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
        run_probes([tmp_path / "a_A.keras"])
    assert envs[0]["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "xdg" / "facekit" / "jax-compile")
    assert envs[0]["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0" and envs[0]["KERAS_BACKEND"] == "jax"
    assert envs[1]["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "mine")


def test_an_in_process_check_never_claims_the_fresh_process(tmp_path):
    inp = keras.Input((128, 128, 3))
    path = _save(_two_heads(_conv(Custom()(inp)), inp), tmp_path / "custom_B.keras")
    rep = check_model(path, isolated=False)  # Custom is registered here, so it loads; the lecturer's would not
    isolation = next(c for c in rep.checks if c.name == "loads without facekit")
    assert isolation.ok is None and "without facekit not tested" in isolation.detail
    assert not [c for c in rep.checks if c.name.startswith("loads on Keras")]


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no such model"):
        check_model("nowhere_A.keras")


@pytest.mark.parametrize("content", [b"", b"not a model"])
def test_a_file_that_is_not_a_keras_file(tmp_path, content):
    path = tmp_path / "empty_A.keras"
    path.write_bytes(content)
    rep = check_model(path)
    assert failing(rep) == {"is a Keras 3 .keras file": f"{path}: not a Keras 3 .keras file (File is not a zip file)"}


@pytest.mark.slow
def test_a_model_that_answers_the_same_for_everyone_fails(tmp_path):
    inp = keras.Input((128, 128, 3))
    x = layers.GlobalAveragePooling2D()(_conv(inp))
    constant = keras.Model(inp, [
        layers.Dense(1, name="age", kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(57.9))(x),
        layers.Dense(1, activation="sigmoid", name="gender", kernel_initializer="zeros")(x)])
    chips = sorted(TRAIN_VAL.iterdir())[:32:4]
    rep = check_model(_save(constant, tmp_path / "const_A.keras"), images=chips, isolated=False)
    assert not rep.passed and "the same answer for every face" in failing(rep)["sane outputs on real images"]
    assert "age 57.9..57.9" in failing(rep)["sane outputs on real images"]
    varied = keras.Model(inp, [layers.Dense(1, name="age", bias_initializer=keras.initializers.Constant(30.0))(x),
                               layers.Dense(1, activation="sigmoid", name="gender")(x)])
    varied.get_layer("age").set_weights([np.full((4, 1), 10.0, "float32"), np.array([30.0], "float32")])
    rep = check_model(_save(varied, tmp_path / "varied_A.keras"), images=chips, isolated=False)
    assert "sane outputs on real images" not in failing(rep), failing(rep)
    few = check_model(tmp_path / "const_A.keras", images=chips[:3], isolated=False)  # too few faces to judge
    assert "sane outputs on real images" not in failing(few)


def test_a_sequential_model_is_judged_not_crashed(foreign):
    rep = check_model(foreign["single"], isolated=False)  # one output, no output_names: a plain Sequential
    assert "loads without facekit" not in failing(rep)
    assert "two outputs of shape (None, 1)" in failing(rep) and "age and gender outputs identified" in failing(rep)

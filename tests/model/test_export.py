"""Hand-in files: float32 whatever the training precision, one input tensor, no config key older Keras rejects."""

import copy
import warnings

import keras
import numpy as np
import pytest

from facekit.contract import OLDEST_KERAS, bgr_to_input
from facekit.inference.check import check_model
from facekit.model.backbones import get_backbone
from facekit.model.compat import NEW_KEYS, PortabilityError, make_portable, non_float32, read_config, version_tuple
from facekit.model.export import MIXED_TOLERANCE, float32_copy, global_policy, save_hand_in
from facekit.model.models import build_finetune, build_scratch, export_from_train
from tests.conftest import TRAIN_VAL


def _chips(n=6):
    from facekit.inference.check import lecturer_inputs

    return lecturer_inputs(sorted(TRAIN_VAL.iterdir())[:n])[0]


def _layer(class_name, name, **config):
    return {"module": "keras.layers", "class_name": class_name, "config": {"name": name, **config}}


def test_new_keys_at_their_default_are_removed_and_others_kept():
    glorot = {"module": "keras.initializers", "class_name": "GlorotUniform",
              "config": {"seed": None, "input_axes": None, "output_axes": None}}
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        _layer("BatchNormalization", "bn", momentum=0.9, renorm=False, renorm_clipping=None, renorm_momentum=0.99),
        _layer("Dense", "d", units=1, quantization_config=None, kernel_initializer=glorot),
        _layer("Resizing", "r", height=160, width=160, antialias=False),
        _layer("RandomFlip", "f", mode="horizontal", data_format="channels_last"),  # 3.6: Keras 3.8 knows it
    ]}}
    removed = make_portable(config, "3.8")
    layers = {layer["config"]["name"]: layer["config"] for layer in config["config"]["layers"]}
    assert layers["bn"] == {"name": "bn", "momentum": 0.9}
    assert layers["d"]["kernel_initializer"]["config"] == {"seed": None}
    assert "quantization_config" not in layers["d"] and "antialias" not in layers["r"]
    assert layers["f"]["data_format"] == "channels_last"
    assert {str(r) for r in removed} >= {"d: GlorotUniform.input_axes (Keras 3.15.0)",
                                         "bn: BatchNormalization.renorm (Keras 3.14.0)"}
    assert make_portable(config, "3.8") == []  # idempotent


@pytest.mark.parametrize(("class_name", "key", "value", "since"), [
    ("BatchNormalization", "renorm", True, "3.14.0"),
    ("Resizing", "antialias", True, "3.9.0"),
])
def test_a_new_key_with_a_non_default_value_is_refused_by_name(class_name, key, value, since):
    config = {"class_name": "Functional", "config": {"layers": [_layer(class_name, "the_layer", **{key: value})]}}
    with pytest.raises(PortabilityError) as err:
        make_portable(config, "3.8")
    message = str(err.value)
    assert "'the_layer'" in message and f"{key}={value!r}" in message and f"Keras {since}" in message


def test_the_table_is_well_formed():
    for row in NEW_KEYS:
        assert row.classes and row.key and len(version_tuple(row.since)) == 3
        assert version_tuple(row.since) > (3, 5)  # measured from 3.5.0 on
    assert version_tuple("3.13.2") > version_tuple("3.8") and version_tuple("3.16.0.dev1") == (3, 16, 0)


def test_lecturer_division_is_bit_identical():
    values = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(bgr_to_input(values), (values / 255.0).astype(np.float32))


def test_saved_hand_in_is_portable_and_has_one_input(tmp_path):
    m = build_scratch(widths=(8, 8, 16, 16, 16), hidden=16)
    export = export_from_train(m.train, tta=True)
    raw, dest = tmp_path / "raw_A.keras", tmp_path / "age_gender_A.keras"
    export.save(raw)
    assert make_portable(read_config(raw), OLDEST_KERAS)  # what this Keras writes needs the rewrite
    removed = save_hand_in(export, dest)
    assert removed and make_portable(read_config(dest), OLDEST_KERAS) == []
    loaded = keras.models.load_model(dest)
    assert len(loaded.inputs) == 1
    x = _chips()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "The structure of `inputs` doesn't match the expected structure"
        got = loaded.predict(x, verbose=0)
    want = export.predict(x, verbose=0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="synchronized BatchNormalization is TensorFlow's")
def test_synchronized_batch_norm_stays_out_of_the_file(tmp_path):
    """TensorFlow multi-device training synchronises BatchNormalization (facekit.engine.distribute); JAX refuses to
    load a layer with the flag, so the file must not carry it, and training must keep it."""
    m = build_scratch(widths=(8, 8, 16, 16, 16), hidden=16)
    bns = [layer for layer in m.train.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in bns:
        layer.synchronized = True
    save_hand_in(m.export, tmp_path / "age_gender_A.keras")
    saved = [o["config"] for o in _objects(read_config(tmp_path / "age_gender_A.keras"))
             if o.get("class_name") == "BatchNormalization"]
    assert len(saved) == len(bns) and not any(c["synchronized"] for c in saved)
    assert all(layer.synchronized for layer in bns)


def _objects(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _objects(v)
    elif isinstance(node, list):
        for v in node:
            yield from _objects(v)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["scratch", "finetune"])
def test_mixed_precision_model_is_exported_in_float32(task, tmp_path):
    with global_policy("mixed_float16"):
        m = (build_scratch(widths=(8, 8, 16, 16, 16), hidden=16) if task == "scratch"
             else build_finetune(get_backbone("mobilenetv2_035"), None, internal_size=160))
        export = export_from_train(m.train, tta=True)
    assert non_float32(copy.deepcopy(export.get_config()))  # the training graph really is mixed
    dest = tmp_path / "age_gender_X.keras"
    save_hand_in(export, dest)
    assert non_float32(read_config(dest)) == {}
    x = _chips()
    loaded = keras.models.load_model(dest)
    exact = float32_copy(export)
    assert exact is not export
    got, same, mixed = (m.predict(x, verbose=0) for m in (loaded, exact, export))
    for i, role in enumerate(loaded.output_names):
        np.testing.assert_allclose(got[i], same[i], atol=1e-5)  # the file is the float32 model
        diff = np.abs(np.asarray(got[i], np.float64) - np.asarray(mixed[i], np.float64)).max()
        assert diff <= MIXED_TOLERANCE[role], (role, diff)  # and computes what the mixed model did
    plain = tmp_path / "mixed_A.keras"
    export.save(plain)  # what facekit wrote before: the policy leaks into the file
    rep = check_model(plain, isolated=False)
    failed = {c.name: c.detail for c in rep.checks if c.ok is False}
    assert "float32 only" in failed and "mixed_float16" in failed["float32 only"]
    assert "float32 only" not in {c.name for c in check_model(dest, isolated=False).checks if c.ok is False}


def test_save_best_keeps_one_float32_twin_in_step_with_training(tmp_path):
    from facekit.engine.callbacks import SaveBest

    with global_policy("mixed_float16"):
        export = export_from_train(build_scratch(widths=(8, 8, 16, 16, 16), hidden=16).train)
    dest = tmp_path / "age_gender_A.keras"
    best = SaveBest(export, dest, monitor=None)
    best.on_epoch_end(0, {})
    twin = best._float32
    assert twin is not export
    export.set_weights([w + 0.01 for w in export.get_weights()])  # as an epoch of training would
    best.on_epoch_end(1, {})
    assert best._float32 is twin  # rebuilt once, not at every improvement
    saved = keras.models.load_model(dest)
    for got, want in zip(saved.get_weights(), export.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert non_float32(read_config(dest)) == {}

"""Discriminative learning rates: the backbone's Adam step is the given fraction of the heads', and stays so
after the checkpoint is reloaded for --resume."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from facekit.engine.optimizer import DiscriminativeAdamW, adamw
from facekit.engine.resume import load_checkpoint
from facekit.engine.runs import LAST

LR = 1e-2


def _model() -> tuple[keras.Model, keras.Model]:
    keras.utils.set_random_seed(0)
    inner = keras.Input((4,))
    low = keras.layers.BatchNormalization(name="bb_bn")(keras.layers.Dense(3, name="bb_low")(inner))
    backbone = keras.Model(inner, keras.layers.Dense(3, name="bb_top")(low), name="backbone")
    inp = keras.Input((4,))
    out = keras.layers.Dense(1, name="head")(backbone(inp))
    return keras.Model(inp, out), backbone


def _step(model: keras.Model) -> list[np.ndarray]:
    """Each variable's change over one training step."""
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    model.train_on_batch(x, np.ones((8, 1), "float32"))
    return [keras.ops.convert_to_numpy(v) - b for v, b in zip(model.trainable_variables, before)]


def _step_sizes(model: keras.Model) -> dict[str, float]:
    """The largest change of each layer's weights in one step (Adam's first step moves every weight with a
    gradient by about the learning rate, whatever the gradient's size)."""
    moved = _step(model)
    out: dict[str, float] = {}
    for v, d in zip(model.trainable_variables, moved):
        layer = v.path.split("/")[-2]
        out[layer] = max(out.get(layer, 0.0), float(np.abs(d).max()))
    return out


@pytest.mark.parametrize("scale", [0.1, 0.25])
def test_the_backbone_moves_by_its_fraction_of_the_rate(scale: float) -> None:
    model, backbone = _model()
    model.compile(optimizer=adamw(model, backbone, scale, learning_rate=LR, weight_decay=0.0), loss="mse")
    assert isinstance(model.optimizer, DiscriminativeAdamW)
    steps = _step_sizes(model)
    assert steps["head"] == pytest.approx(LR, rel=0.05)
    for layer in ("bb_low", "bb_bn", "bb_top"):
        assert steps[layer] == pytest.approx(LR * scale, rel=0.05), layer


def test_layer_decay_slows_each_layer_below_the_top():
    model, backbone = _model()
    model.compile(optimizer=adamw(model, backbone, 0.5, 0.2, learning_rate=LR, weight_decay=0.0), loss="mse")
    steps = _step_sizes(model)
    assert steps["head"] == pytest.approx(LR, rel=0.05)
    assert steps["bb_top"] == pytest.approx(LR * 0.5, rel=0.05)
    # One layer with a kernel below the top; its normalisation trains at its depth.
    assert steps["bb_low"] == pytest.approx(LR * 0.5 * 0.2, rel=0.05)
    assert steps["bb_bn"] == pytest.approx(LR * 0.5 * 0.2, rel=0.05)


def test_one_rate_is_keras_own_adamw() -> None:
    """The default run's checkpoint stays plain Keras (it loads without facekit)."""
    model, backbone = _model()
    opt = adamw(model, backbone, 1.0, learning_rate=LR)
    assert type(opt) is keras.optimizers.AdamW
    assert type(adamw(model, backbone, 1.0, 0.9, learning_rate=LR)) is DiscriminativeAdamW  # decay alone
    assert type(adamw(model, None, 0.1, learning_rate=LR)) is keras.optimizers.AdamW  # Model A: no backbone
    backbone.trainable = False  # a frozen phase: nothing to scale
    assert type(adamw(model, backbone, 0.1, learning_rate=LR)) is keras.optimizers.AdamW


def test_a_reloaded_checkpoint_keeps_the_rates(tmp_path) -> None:
    model, backbone = _model()
    model.compile(optimizer=adamw(model, backbone, 0.1, learning_rate=LR, weight_decay=0.0), loss="mse")
    for _ in range(3):  # Adam's later steps are no longer exactly the rate: compare against a twin instead
        _step(model)
    model.save(tmp_path / LAST)
    twin = load_checkpoint(tmp_path)
    assert isinstance(twin.optimizer, DiscriminativeAdamW) and twin.optimizer.scales == model.optimizer.scales
    mine, theirs = _step(model), _step(twin)
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)

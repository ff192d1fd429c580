"""Model A (from scratch) and Model B (ImageNet backbone) for age and gender.

Both share the contract of the lecturer's hidden test: input (None, 128, 128, 3)
float32 BGR in [0, 1]; outputs ``age`` (years) and ``gender`` (one sigmoid
unit, 1 = female). Only built-in layers are used, so the exported file loads
with plain ``keras.models.load_model``.

Age is learnt as a distribution over 0..116 (label distribution learning);
the ``age`` output is its expectation, computed by a frozen Dense layer whose
weights are the ages themselves. Training sees the distribution as a third
output, ``age_dist`` (and, with ``race_head``, a fourth: ``race``, an auxiliary
5-way softmax over the same features); the exported model has only ``age``
and ``gender``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from facekit.contract import (
    AGE_DISTRIBUTION,
    DEFAULT_OUTPUT_ORDER,
    FLIP_AVERAGE,
    INPUT_SHAPE,
    INPUT_SIZE,
    N_AGES,
    N_RACES,
    RACE,
    check_output_order,
    in_output_order,
)
from facekit.model.backbones import Backbone, build_backbone


@dataclass
class AgeGenderModels:
    train: keras.Model  # outputs {"age", "gender", AGE_DISTRIBUTION}
    export: keras.Model  # outputs [age, gender] (or the order asked for)
    backbone: keras.Model | None = None


RESIDUAL_TRUNK = "residual_trunk"  # Model A's residual trunk is a nested model too, but no pretrained backbone


def find_backbone(train: keras.Model) -> keras.Model | None:
    """Model B's backbone inside a (reloaded) training model: its only nested model that is not A's trunk."""
    return next((layer for layer in train.layers
                 if isinstance(layer, keras.Model) and layer.name != RESIDUAL_TRUNK), None)


def input_adapter(x, scale: float, offset: tuple[float, float, float], rgb: bool, name: str = "input_adapter"):
    """Frozen 1 x 1 convolution: BGR [0, 1] -> the channel order and scaling the network wants, in one step."""
    conv = layers.Conv2D(3, 1, use_bias=True, trainable=False, name=name, dtype="float32")
    y = conv(x)
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    for c in range(3):
        kernel[0, 0, 2 - c if rgb else c, c] = scale  # input channel -> output channel
    conv.set_weights([kernel, np.asarray(offset, np.float32)])
    return y


def scratch_trunk(x, widths: tuple[int, ...] = (32, 64, 128, 256, 384), dropout: float = 0.1):
    """Five stages of two 3 x 3 Conv-BN-ReLU and a 2 x 2 max-pool: 128 -> 4 x 4 feature map."""
    for stage, width in enumerate(widths):
        for j in range(2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"s{stage}_conv{j}")(x)
            x = layers.BatchNormalization(name=f"s{stage}_bn{j}")(x)
            x = layers.ReLU(name=f"s{stage}_relu{j}")(x)
        x = layers.MaxPooling2D(2, name=f"s{stage}_pool")(x)
        if dropout and stage >= 2:
            x = layers.SpatialDropout2D(dropout, name=f"s{stage}_drop")(x)
    return x


def residual_trunk(widths: tuple[int, ...] = (32, 64, 128, 256, 384), dropout: float = 0.1,
                   blocks: int = 2) -> keras.Model:
    """A ResNet-style trunk, 128 -> 4 x 4 like the plain one, at about half its multiply-adds.

    A stride-2 stem puts the first stage at 64 x 64 (the plain trunk's two
    convolutions at 128 x 128 are its most expensive stage), then each of the
    other widths is a stage of ``blocks`` basic residual blocks, the first
    halving the map. A nested model: export's flip averaging re-calls the
    training model's chain of layers, and residual branches are no chain.
    """
    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="trunk_in")
    x = layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, width in enumerate(widths[1:], start=1):
        for b in range(blocks):
            stride, name = (2 if b == 0 else 1), f"s{stage}b{b}"
            y = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv0")(x)
            y = layers.BatchNormalization(name=f"{name}_bn0")(y)
            y = layers.ReLU(name=f"{name}_relu0")(y)
            y = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv1")(y)
            y = layers.BatchNormalization(name=f"{name}_bn1")(y)
            shortcut = x
            if stride != 1 or int(x.shape[-1]) != width:
                shortcut = layers.Conv2D(width, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
                shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
            x = layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))
        if dropout and stage >= 2:
            x = layers.SpatialDropout2D(dropout, name=f"s{stage}_drop")(x)
    return keras.Model(inp, x, name=RESIDUAL_TRUNK)


def heads(features, hidden: int, dropout: float, race_head: bool = False):
    """Pooled features -> (age, gender, age_dist, race or None)."""
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    if hidden:
        x = layers.Dropout(dropout, name="head_drop0")(x)
        x = layers.Dense(hidden, activation="relu", name="head_fc")(x)
    x = layers.Dropout(dropout, name="head_drop")(x)
    logits = layers.Dense(N_AGES, name="age_logits", dtype="float32")(x)
    age_dist = layers.Softmax(name=AGE_DISTRIBUTION, dtype="float32")(logits)
    expect = layers.Dense(1, use_bias=False, trainable=False, name="age", dtype="float32")
    age = expect(age_dist)
    expect.set_weights([np.arange(N_AGES, dtype=np.float32)[:, None]])
    gender = layers.Dense(1, activation="sigmoid", name="gender", dtype="float32")(x)
    race = layers.Dense(N_RACES, activation="softmax", name=RACE, dtype="float32")(x) if race_head else None
    return age, gender, age_dist, race


def _assemble(inp, features, hidden: int, dropout: float, output_order: str, name: str,
              backbone: keras.Model | None = None, race_head: bool = False) -> AgeGenderModels:
    check_output_order(output_order)
    age, gender, age_dist, race = heads(features, hidden, dropout, race_head)
    outputs = {"age": age, "gender": gender, AGE_DISTRIBUTION: age_dist, **({RACE: race} if race_head else {})}
    train = keras.Model(inp, outputs, name=f"{name}_train")
    return AgeGenderModels(train, export_from_train(train, output_order), backbone)


def build_scratch(widths: tuple[int, ...] = (32, 64, 128, 256, 384), hidden: int = 256, dropout: float = 0.3,
                  output_order: str = DEFAULT_OUTPUT_ORDER, arch: str = "plain",
                  race_head: bool = False) -> AgeGenderModels:
    """Model A from random weights: the VGG-style trunk (``plain``) or the residual one."""
    from facekit.choices import SCRATCH_ARCHS

    if arch not in SCRATCH_ARCHS:
        raise ValueError(f"arch must be one of {', '.join(SCRATCH_ARCHS)}, got {arch!r}")
    inp = keras.Input(INPUT_SHAPE, name="image")
    x = input_adapter(inp, 2.0, (-1.0, -1.0, -1.0), rgb=True)
    features = scratch_trunk(x, widths) if arch == "plain" else residual_trunk(widths)(x)
    return _assemble(inp, features, hidden, dropout, output_order, "age_gender_A", race_head=race_head)


def build_finetune(spec: Backbone, weights: str | None, internal_size: int = INPUT_SIZE, hidden: int = 0,
                   dropout: float = 0.3, output_order: str = DEFAULT_OUTPUT_ORDER,
                   race_head: bool = False) -> AgeGenderModels:
    """Model B: an ImageNet backbone, optionally run at a larger internal resolution (input stays 128)."""
    inp = keras.Input(INPUT_SHAPE, name="image")
    x = input_adapter(inp, spec.scale, spec.offset, spec.rgb)
    if internal_size != INPUT_SIZE:
        x = layers.Resizing(internal_size, internal_size, interpolation="bilinear", name="upsample")(x)
    backbone = build_backbone(spec, internal_size, weights)
    features = backbone(x)
    return _assemble(inp, features, hidden, dropout, output_order, "age_gender_B", backbone, race_head)


HEAD_LAYERS = ("head_drop0", "head_fc", "head_drop")  # between the pooled features and the two heads, if present


def flip_horizontal(x, name: str = "flip"):
    """Mirror images left-right with built-in layers only (no Lambda, nothing custom).

    Width and channels are folded into one axis, which a frozen 1 x 1
    convolution permutes; multiplying by 0 and 1 is exact in float32. A
    convolution rather than a Dense keeps Model A's "first fully connected
    layer sees < 10 x 10" rule true.
    """
    h, w, c = (int(d) for d in x.shape[1:])
    y = layers.Reshape((h, 1, w * c), name=f"{name}_fold")(x)
    mirror = layers.Conv2D(w * c, 1, use_bias=False, trainable=False, name=f"{name}_mirror", dtype="float32")
    y = mirror(y)
    kernel = np.zeros((1, 1, w * c, w * c), np.float32)
    for col in range(w):
        for ch in range(c):
            kernel[0, 0, col * c + ch, (w - 1 - col) * c + ch] = 1.0
    mirror.set_weights([kernel])
    return layers.Reshape((h, w, c), name=f"{name}_unfold")(y)


def _flip_averaged_heads(train: keras.Model):
    """Age and gender from the mean of the pooled features of the image and its mirror image.

    The trunk's layers are re-called on the mirrored input (shared weights,
    one flat graph), so the exported file is ordinary built-in layers and the
    heads stay the same single sigmoid unit and expectation layer. Averaging
    features rather than outputs keeps each head's activation the last op.
    """
    pooled = train.get_layer("pool").output
    mirrored = flip_horizontal(train.inputs[0])
    previous = train.layers[0]
    for layer in train.layers[1:]:
        # A nested model (B's backbone) reports its own inner input, so only plain layers are checked.
        if not isinstance(layer, keras.Model) and layer.input._keras_history[0] is not previous:
            raise ValueError(f"{train.name}: layer {layer.name!r} does not follow {previous.name!r}; flip "
                             "averaging expects a trunk that is a chain of layers up to 'pool'")
        mirrored, previous = layer(mirrored), layer
        if layer.name == "pool":
            break
    x = layers.Average(name=FLIP_AVERAGE)([pooled, mirrored])
    names = {layer.name for layer in train.layers}
    for name in HEAD_LAYERS:
        if name in names:
            x = train.get_layer(name)(x)
    age = train.get_layer("age")(train.get_layer(AGE_DISTRIBUTION)(train.get_layer("age_logits")(x)))
    return age, train.get_layer("gender")(x)


def export_from_train(train: keras.Model, output_order: str = DEFAULT_OUTPUT_ORDER, tta: bool = False) -> keras.Model:
    """The deployable two-output model over the layers of a (possibly reloaded) training model.

    ``tta`` builds the flip averaging into the graph, so the lecturer's plain
    ``predict`` gets it.
    """
    if tta:
        age, gender = _flip_averaged_heads(train)
    else:
        age, gender = train.get_layer("age").output, train.get_layer("gender").output
    name = train.name.removesuffix("_train")
    # One input tensor, not a list: a list makes the lecturer's plain predict(x) warn about the structure.
    return keras.Model(train.inputs[0], in_output_order(age, gender, output_order), name=name)

"""Several trained models joined into one hand-in file that averages them, with built-in layers only.

Independently initialised networks make partly independent errors, so their
average is better than any one (issue 14's first lever). The lecturer's code
loads one file, so the members go inside one graph over one input:

- age: the mean of the members' expectations, as one frozen Dense over the
  concatenated age distributions (kernel: the ages 0..116 once per member,
  divided by the number of members);
- gender: the mean of the members' logits through one sigmoid, as one Dense
  unit over the concatenated features that fed each member's gender unit
  (kernel: the members' kernels stacked, divided by their number; bias: their
  mean). So the gender output is still literally one sigmoid Dense unit.

Each member's layers are copied into the graph under a ``m<i>_`` prefix (flat,
not nested), so Model A's rule still finds a small map before the first
fully connected layer. Members must be facekit exports (they have the
``age_dist`` and ``gender`` layers the averaging needs).

Each output may average a subset of the members (``age_from``, ``gender_from``):
a recipe that is better at one task than the other (round two: strong
augmentation for B's age, CutMix for its gender) then gives only that output,
and the heads nobody reads are left out of the graph.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

from facekit.contract import (
    AGE_DISTRIBUTION,
    DEFAULT_OUTPUT_ORDER,
    INPUT_SHAPE,
    N_AGES,
    check_output_order,
    in_output_order,
)

MEMBER_PREFIX = "m{}_"  # member i's layers are copied in as MEMBER_PREFIX.format(i) + their name


def mean_gender(p_female: np.ndarray) -> np.ndarray:
    """Members' P(female) (stacked on the first axis) joined as a merged file joins them: the sigmoid of
    their mean logit. For the numpy side (distillation targets, averaged views) to match the graph's."""
    eps = 1e-7
    p = np.clip(np.asarray(p_female, np.float64), eps, 1 - eps)
    logit = np.mean(np.log(p) - np.log1p(-p), axis=0)
    return 1.0 / (1.0 + np.exp(-logit))


def age_dist_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """A facekit export's age-distribution layers: its own ``age_dist``, or one per member of a merged file.

    Distillation needs the distribution, not just the mean age; a merged file
    has no ``age_dist`` of its own, only its members'. Empty for other files.
    """
    by_name = {layer.name: layer for layer in model.layers}
    if AGE_DISTRIBUTION in by_name:
        return [by_name[AGE_DISTRIBUTION]]
    # Not necessarily m0, m1, ...: a member that gives only the gender has no age head in the graph.
    pattern = re.compile(MEMBER_PREFIX.format(r"(\d+)") + re.escape(AGE_DISTRIBUTION))
    found = {int(m.group(1)): layer for name, layer in by_name.items() if (m := pattern.fullmatch(name))}
    return [found[i] for i in sorted(found)]


def _copy_into(member: keras.Model, inp, prefix: str) -> keras.Model:
    """``member``'s graph over ``inp`` with renamed copies of its layers, carrying its weights."""

    def renamed(layer: keras.layers.Layer) -> keras.layers.Layer:
        return layer.__class__.from_config({**layer.get_config(), "name": prefix + layer.name})

    copy = keras.models.clone_model(member, input_tensors=inp, clone_function=renamed)
    copy.set_weights(member.get_weights())
    return copy


def output_members(k: int, age_from: Sequence[int] | None, gender_from: Sequence[int] | None
                   ) -> tuple[list[int], list[int]]:
    """The members (numbered from 1, as given) whose age and whose gender each output averages: all by
    default; refused when a number is out of range or repeated, an output has none, or a member gives neither."""
    chosen = []
    for what, given in (("age", age_from), ("gender", gender_from)):
        picked = list(range(1, k + 1)) if given is None else list(given)
        if not picked:
            raise ValueError(f"the {what} output needs at least one member")
        if bad := [i for i in picked if not 1 <= i <= k]:
            raise ValueError(f"{what} from member {bad[0]}: the members are numbered 1 to {k}, as given")
        if len(set(picked)) < len(picked):
            raise ValueError(f"{what}: a member named twice ({', '.join(map(str, picked))})")
        chosen.append(sorted(picked))
    if idle := sorted(set(range(1, k + 1)) - set(chosen[0]) - set(chosen[1])):
        raise ValueError(f"member {idle[0]} gives neither the age nor the gender: leave it out of the merge")
    return chosen[0], chosen[1]


def _joined(tensors: list, name: str):
    # One tensor stays as it is: a one-input Concatenate is not a layer every Keras 3 release builds.
    return tensors[0] if len(tensors) == 1 else layers.Concatenate(name=name)(tensors)


def merge(members: list[keras.Model], output_order: str = DEFAULT_OUTPUT_ORDER,
          name: str = "age_gender_ensemble", age_from: Sequence[int] | None = None,
          gender_from: Sequence[int] | None = None) -> keras.Model:
    """One model whose age is the mean age of the ``age_from`` members and whose P(female) is the sigmoid of
    the ``gender_from`` members' mean logit (members numbered from 1; default: every member for both)."""
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
    check_output_order(output_order)
    for i, m in enumerate(members):
        names = {layer.name for layer in m.layers}
        missing = {AGE_DISTRIBUTION, "gender"} - names
        if missing:
            raise ValueError(f"member {i + 1} ({m.name}) has no {' or '.join(sorted(missing))} layer: only facekit "
                             "exports can be merged (their age distribution and gender unit are averaged)")
    ages, genders = output_members(len(members), age_from, gender_from)
    inp = keras.Input(INPUT_SHAPE, name="image")
    dists, features, kernels, biases = [], [], [], []
    for i, member in enumerate(members):
        prefix = MEMBER_PREFIX.format(i)
        copy = _copy_into(member, inp, prefix)
        if i + 1 in ages:
            dists.append(copy.get_layer(prefix + AGE_DISTRIBUTION).output)
        if i + 1 in genders:
            gender = copy.get_layer(prefix + "gender")
            features.append(gender.input)
            kernel, bias = gender.get_weights()
            kernels.append(kernel)
            biases.append(bias)
    age_layer = layers.Dense(1, use_bias=False, trainable=False, name="age", dtype="float32")
    age = age_layer(_joined(dists, "age_dists"))
    age_layer.set_weights([np.tile(np.arange(N_AGES, dtype=np.float32), len(dists))[:, None] / len(dists)])
    gender_layer = layers.Dense(1, activation="sigmoid", trainable=False, name="gender", dtype="float32")
    gender = gender_layer(_joined(features, "gender_features"))
    gender_layer.set_weights([np.concatenate(kernels, axis=0) / len(kernels), np.mean(biases, axis=0)])
    return keras.Model(inp, in_output_order(age, gender, output_order), name=name)

"""AdamW with a smaller learning rate for a pretrained backbone than for the heads (discriminative rates).

Model B's best epoch comes early (12 to 15 of 40 with EMA) while its training
MAE keeps falling: the backbone overfits first. Keras has no per-variable
learning rate and no optimizer groups, and scaling a variable's gradient does
not scale an Adam step (Adam divides it out), so the scale is applied to the
learning rate inside ``update_step``, which every backend calls once per
variable. The variables are found by index (``_get_variable_index``): on
TensorFlow the update sees the backend's variables, not Keras's.

Registered as a Keras serializable, so a checkpoint (``last.keras``) of such a
run reloads with the same rates for ``--resume``. Only the training
checkpoint holds it: the exported hand-in file has no optimizer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras


@keras.saving.register_keras_serializable(package="facekit")
class DiscriminativeAdamW(keras.optimizers.AdamW):
    """AdamW whose step for the variables named in ``scaled_paths`` uses ``lr_scale`` times the learning rate.

    Decoupled weight decay stays at the shared rate for every variable (at
    facekit's 1e-4 it moves a weight by about 1e-4 of itself over a whole run).
    """

    def __init__(self, *args: Any, scaled_paths: Iterable[str] = (), lr_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scaled_paths = tuple(scaled_paths)
        self.lr_scale = float(lr_scale)
        self._scaled_index: frozenset[int] = frozenset()

    def build(self, var_list: list) -> None:
        super().build(var_list)
        wanted = set(self.scaled_paths)
        self._scaled_index = frozenset(i for i, v in enumerate(var_list) if v.path in wanted)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self._get_variable_index(variable) in self._scaled_index:
            learning_rate = keras.ops.multiply(learning_rate, self.lr_scale)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scaled_paths": list(self.scaled_paths), "lr_scale": self.lr_scale}


def adamw(model: keras.Model, backbone: keras.Model | None, backbone_lr: float, **kwargs: Any
          ) -> keras.optimizers.AdamW:
    """Keras's own AdamW, or, with ``backbone_lr`` below 1 and a trainable backbone, the discriminative one.

    The plain optimizer stays the default so that a default run's checkpoint is plain Keras.
    """
    if backbone is None or backbone_lr == 1.0 or not backbone.trainable_variables:
        return keras.optimizers.AdamW(**kwargs)
    paths = [v.path for v in model.trainable_variables]
    scaled = [v.path for v in backbone.trainable_variables]
    if len(set(paths)) != len(paths):  # a path shared by two variables would scale both or neither
        twice = sorted({p for p in paths if paths.count(p) > 1})
        raise ValueError(f"{model.name}: variable paths {twice[:3]} occur twice, so the backbone's cannot be "
                         "told from the heads' for --backbone-lr")
    return DiscriminativeAdamW(scaled_paths=scaled, lr_scale=backbone_lr, **kwargs)

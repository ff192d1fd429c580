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

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="facekit")
class DiscriminativeAdamW(keras.optimizers.AdamW):
    """AdamW whose step for each variable named in ``scales`` (by its path) uses that fraction of the rate.

    Decoupled weight decay stays at the shared rate for every variable (at
    facekit's 1e-4 it moves a weight by about 1e-4 of itself over a whole run).
    """

    def __init__(self, *args: Any, scales: dict[str, float] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scales = {str(k): float(v) for k, v in (scales or {}).items()}
        self._scale_at: dict[int, float] = {}

    def build(self, var_list: list) -> None:
        super().build(var_list)
        self._scale_at = {i: self.scales[v.path] for i, v in enumerate(var_list)
                          if v.path in self.scales and self.scales[v.path] != 1.0}

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        scale = self._scale_at.get(self._get_variable_index(variable))
        if scale is not None:
            learning_rate = keras.ops.multiply(learning_rate, scale)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scales": dict(self.scales)}


def backbone_scales(backbone: keras.Model, backbone_lr: float, layer_decay: float) -> dict[str, float]:
    """Each trainable backbone variable's fraction of the heads' rate: ``backbone_lr`` at the top layer, and
    ``layer_decay`` times less for each layer with a kernel below it (a normalisation layer shares the depth
    of the convolution before it)."""
    depth, depths = -1, []
    for layer in backbone.layers:
        if any(v.path.endswith(("kernel", "depthwise_kernel", "pointwise_kernel")) for v in layer.trainable_weights):
            depth += 1
        depths.append((layer, max(depth, 0)))
    top = max((d for _, d in depths), default=0)
    return {v.path: backbone_lr * layer_decay ** (top - d) for layer, d in depths for v in layer.trainable_weights}


def adamw(model: keras.Model, backbone: keras.Model | None, backbone_lr: float, layer_decay: float = 1.0,
          **kwargs: Any) -> keras.optimizers.AdamW:
    """Keras's own AdamW, or, with a trainable backbone and ``backbone_lr`` or ``layer_decay`` below 1, the
    discriminative one. The plain optimizer stays the default so that a default run's checkpoint is plain Keras.
    """
    if backbone is None or (backbone_lr == 1.0 and layer_decay == 1.0) or not backbone.trainable_variables:
        return keras.optimizers.AdamW(**kwargs)
    paths = [v.path for v in model.trainable_variables]
    if len(set(paths)) != len(paths):  # a path shared by two variables would scale both or neither
        twice = sorted({p for p in paths if paths.count(p) > 1})
        raise ValueError(f"{model.name}: variable paths {twice[:3]} occur twice, so the backbone's cannot be "
                         "told from the heads' for --backbone-lr")
    return DiscriminativeAdamW(scales=backbone_scales(backbone, backbone_lr, layer_decay), **kwargs)

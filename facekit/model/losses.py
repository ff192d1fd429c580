"""Training-only losses and metrics. They never reach an exported file: exports are compiled with
built-ins (``export.save_hand_in``), so the lecturer's plain ``load_model`` never meets them."""

from __future__ import annotations

import keras
from keras import ops

from facekit.contract import N_AGES

MEAN_WEIGHT, VARIANCE_WEIGHT = 0.2, 0.05  # lambda_1, lambda_2 of the mean-variance loss paper


@keras.saving.register_keras_serializable(package="facekit")
class DistributionVariance(keras.losses.Loss):
    """Cross-entropy to the soft age target plus ``weight`` x the variance of the predicted distribution.

    The variance half of the mean-variance loss (Pan et al., CVPR 2018): it
    rewards a confident, narrow age distribution. The mean half is a plain
    squared error on the ``age`` output, so it needs nothing custom.
    """

    def __init__(self, weight: float = VARIANCE_WEIGHT, name: str = "distribution_variance", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.weight = weight

    def call(self, y_true, y_pred):
        ages = ops.arange(N_AGES, dtype="float32")
        p = ops.cast(y_pred, "float32")
        ce = keras.losses.categorical_crossentropy(ops.cast(y_true, "float32"), p)  # the default age loss
        mean = ops.sum(p * ages, axis=-1, keepdims=True)
        variance = ops.sum(p * ops.square(ages - mean), axis=-1)
        return ce + self.weight * variance

    def get_config(self) -> dict:
        return {**super().get_config(), "weight": self.weight}


@keras.saving.register_keras_serializable(package="facekit")
class LabelAccuracy(keras.metrics.BinaryAccuracy):
    """Gender accuracy against the side of 0.5 a soft target lies on.

    Distillation and mixup train on soft gender targets (half the label, half
    a teacher's probability; a mix of two labels). Keras's ``BinaryAccuracy``
    asks a soft target to equal the thresholded prediction, which it never
    does, so training accuracy read 0.0 for every distilled run. Rounding the
    target gives the label back, unless a teacher outweighs it or a mix is an
    exact tie; hard targets score exactly as ``BinaryAccuracy`` scores them.
    """

    def __init__(self, name: str = "accuracy", dtype=None, threshold: float = 0.5) -> None:
        super().__init__(name=name, dtype=dtype, threshold=threshold)

    def update_state(self, y_true, y_pred, sample_weight=None):
        label = ops.cast(ops.greater_equal(ops.cast(y_true, "float32"), 0.5), "float32")
        return super().update_state(label, y_pred, sample_weight)

import keras
import numpy as np
import pytest
from keras import ops

from facekit.contract import N_AGES
from facekit.data.dataset import age_distributions
from facekit.model.losses import DistributionVariance, LabelAccuracy


def test_variance_term_adds_to_cross_entropy():
    target = age_distributions(np.array([30.0]), 2.0)
    sharp = np.zeros((1, N_AGES), np.float32)
    sharp[0, 30] = 1.0
    wide = age_distributions(np.array([30.0]), 5.0)
    loss = DistributionVariance(weight=0.05)
    ce_sharp = -np.sum(target * np.log(np.clip(sharp, 1e-7, 1)))
    assert float(ops.convert_to_numpy(loss(target, sharp))) == pytest.approx(ce_sharp, rel=1e-4)  # variance 0
    ce_wide = -np.sum(target * np.log(np.clip(wide, 1e-7, 1)))
    var_wide = float(np.sum(wide * (np.arange(N_AGES) - 30.0) ** 2))
    assert var_wide == pytest.approx(25.0, rel=1e-3)
    assert float(ops.convert_to_numpy(loss(target, wide))) == pytest.approx(ce_wide + 0.05 * var_wide, rel=1e-4)
    assert DistributionVariance.from_config(loss.get_config()).weight == 0.05


def test_label_accuracy_scores_soft_targets_by_their_label():
    """A distilled or mixed target (0.985, 0.3) stands for a label; Keras's BinaryAccuracy scores it 0."""
    soft = np.array([[0.985], [0.3], [0.75], [0.02]], np.float32)
    pred = np.array([[0.9], [0.2], [0.4], [0.1]], np.float32)
    metric = LabelAccuracy()
    metric.update_state(soft, pred)
    assert float(metric.result()) == pytest.approx(0.75)
    plain = keras.metrics.BinaryAccuracy()
    plain.update_state(soft, pred)
    assert float(plain.result()) == 0.0
    hard = np.round(soft)
    for m in (LabelAccuracy(), keras.metrics.BinaryAccuracy()):
        m.update_state(hard, pred, sample_weight=np.array([1, 1, 0, 1], np.float32))
        assert float(m.result()) == pytest.approx(1.0)
    again = LabelAccuracy.from_config(metric.get_config())
    assert again.name == "accuracy" and again.threshold == 0.5

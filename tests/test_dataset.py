import numpy as np
import pytest

from facekit.augment import STRENGTHS, build_augment
from facekit.dataset import N_AGES, FaceBatches, age_distributions, to_model_input


def test_model_input_is_bgr_over_255():
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    x = to_model_input(rgb)
    assert x.dtype == np.float32 and x[0, 0, 0].tolist() == [0.0, 0.0, 1.0]  # red is last in BGR


def test_age_distribution():
    d = age_distributions(np.array([0, 30, 116]), sigma=2.0)
    assert d.shape == (3, N_AGES)
    np.testing.assert_allclose(d.sum(1), 1.0, rtol=1e-5)
    assert d.argmax(1).tolist() == [0, 30, 116]
    assert abs((d[1] * np.arange(N_AGES)).sum() - 30) < 1e-3


def test_batches_from_real_crops(tiny_cache):
    from facekit.cache import read_cache

    data = read_cache(tiny_cache)
    plain = FaceBatches(data.images, data.age, data.gender, batch_size=10)
    x, y = plain[0]
    assert len(plain) == 3 and x.shape == (10, 128, 128, 3)
    np.testing.assert_allclose(x, to_model_input(data.images[:10]))
    assert y["age"][:, 0].tolist() == data.age[:10].tolist() and y["age_dist"].shape == (10, N_AGES)
    aug = FaceBatches(data.images, data.age, data.gender, batch_size=10, augment=build_augment("strong"),
                      workers=2, steps=1)
    xa, ya = aug[0]
    assert len(aug) == 1 and xa.shape == x.shape and xa.dtype == np.float32
    assert 0.0 <= xa.min() and xa.max() <= 1.0 and not np.allclose(xa, x)
    assert ya["age"][:, 0].tolist() == data.age[:10].tolist()  # augmentation never touches labels


def test_every_strength_builds():
    for s in STRENGTHS:
        aug = build_augment(s)
        if aug is not None:
            assert aug(image=np.zeros((128, 128, 3), np.uint8))["image"].shape == (128, 128, 3)
    with pytest.raises(ValueError, match="strength"):
        build_augment("wild")

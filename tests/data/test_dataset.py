import numpy as np
import pytest

from facekit.contract import N_AGES, rgb_to_input
from facekit.data.augment import STRENGTHS, build_augment
from facekit.data.dataset import FaceBatches, age_distributions, mix_batch


def test_model_input_is_bgr_over_255():
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    x = rgb_to_input(rgb)
    assert x.dtype == np.float32 and x[0, 0, 0].tolist() == [0.0, 0.0, 1.0]  # red is last in BGR


def test_age_distribution():
    d = age_distributions(np.array([0, 30, 116]), sigma=2.0)
    assert d.shape == (3, N_AGES)
    np.testing.assert_allclose(d.sum(1), 1.0, rtol=1e-5)
    assert d.argmax(1).tolist() == [0, 30, 116]
    assert abs((d[1] * np.arange(N_AGES)).sum() - 30) < 1e-3


def test_batches_from_real_crops(tiny_cache):
    from facekit.data.cache import read_cache

    data = read_cache(tiny_cache)
    plain = FaceBatches(data.images, data.age, data.gender, batch_size=10)
    x, y = plain[0]
    assert len(plain) == 3 and x.shape == (10, 128, 128, 3)
    np.testing.assert_allclose(x, rgb_to_input(data.images[:10]))
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


def _constant_batch(n=8, size=32):
    """Image i is filled with the value i, and a 'probe' target carries the same i, so the partner and
    weight used for each image can be read back from the pixels and compared with the mixed targets."""
    ages = np.random.default_rng(3).integers(1, 90, n).astype(np.float32)
    values = np.arange(n, dtype=np.float32)
    x = np.broadcast_to(values[:, None, None, None], (n, size, size, 3)).copy()
    return x, {"age": ages[:, None], "age_dist": age_distributions(ages, 2.0), "probe": values[:, None],
               "gender": (values[:, None] % 2).astype(np.float32)}


@pytest.mark.parametrize("mix", ["mixup", "cutmix"])
def test_mixing_mixes_images_and_targets_alike(mix):
    x, t = _constant_batch()
    for seed in range(6):
        mx, mt = mix_batch(x, t, mix, 1.0, np.random.default_rng(seed))
        assert mx.shape == x.shape and mx.dtype == np.float32
        # Pixels and targets share one weight and one partner per image.
        np.testing.assert_allclose(mx.mean(axis=(1, 2, 3)), mt["probe"][:, 0], atol=1e-4)
        np.testing.assert_allclose(mt["age_dist"].sum(1), 1.0, rtol=1e-5)
        mean = (mt["age_dist"] * np.arange(N_AGES)).sum(1)
        np.testing.assert_allclose(mean, mt["age"][:, 0], atol=0.05)  # the age target is the mixture's mean
        assert ((mt["gender"] >= 0) & (mt["gender"] <= 1)).all()
        if mix == "cutmix":  # a pasted box: each pixel is wholly one image or the other
            assert all(len(np.unique(img)) <= 2 for img in mx)


def test_mixed_batches_are_reproducible(tiny_cache):
    from facekit.data.cache import read_cache

    data = read_cache(tiny_cache)
    make = lambda: FaceBatches(data.images, data.age, data.gender, 8, None, mix="cutmix", seed=4)  # noqa: E731
    a, b = make()[0], make()[0]
    np.testing.assert_array_equal(a[0], b[0])
    plain = FaceBatches(data.images, data.age, data.gender, 8, None, seed=4)[0]
    assert not np.array_equal(a[0], plain[0])
    with pytest.raises(ValueError, match="mix must be"):
        FaceBatches(data.images, data.age, data.gender, 8, None, mix="blend")


def test_augmented_batches_do_not_depend_on_which_thread_or_order_makes_them(tiny_cache):
    """A batch's augmentation comes from (seed, epoch, batch): the same run whatever thread (``--workers``), device
    count or access order produces it. Seeding each thread's pipeline once, from a generator they shared, gave a
    two-device run other crops than one device's."""
    from concurrent.futures import ThreadPoolExecutor

    from facekit.data.cache import read_cache

    data = read_cache(tiny_cache)
    make = lambda: FaceBatches(data.images, data.age, data.gender, 8, build_augment("default"), shuffle=True,  # noqa: E731
                               seed=3)
    ref = make()
    want = [ref[i][0] for i in range(len(ref))]
    other = make()
    other[2]  # noqa: B018  (another batch first, on this thread)
    with ThreadPoolExecutor(2) as pool:  # then each batch on a fresh thread
        got = list(pool.map(lambda i: other[i][0], range(len(other))))
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)
    ref.on_epoch_end()
    assert not np.array_equal(ref[0][0], want[0])  # a new epoch: new order, new augmentation

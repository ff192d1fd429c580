"""Distillation: a teacher's predictions blended into the student's targets."""

import json

import keras
import numpy as np
import pytest

from facekit.cache import read_cache
from facekit.contract import N_AGES, rgb_to_input
from facekit.dataset import FaceBatches
from facekit.distill import check_teacher_split, teacher_targets
from facekit.split import RunSplit, write_run_split
from facekit.train import train
from tests.conftest import quick_config


def test_teacher_targets_use_its_age_distribution(tiny_models, tiny_cache):
    images = read_cache(tiny_cache).images[:5]
    soft = teacher_targets(tiny_models["B_swapped"], images)  # outputs found by role, not position
    assert soft.source == "age_dist layer" and soft.age_dist.shape == (5, N_AGES)
    np.testing.assert_allclose(soft.age_dist.sum(1), 1.0, rtol=1e-5)
    model = keras.models.load_model(tiny_models["B_swapped"])
    gender, age = model.predict(rgb_to_input(images), verbose=0)
    np.testing.assert_allclose(soft.p_female, gender[:, 0], rtol=1e-5)
    np.testing.assert_allclose((soft.age_dist * np.arange(N_AGES)).sum(1), age[:, 0], rtol=1e-3)


def test_teacher_without_distribution_gets_a_gaussian(tiny_cache, tmp_path):
    inp = keras.Input((128, 128, 3))
    flat = keras.layers.GlobalAveragePooling2D()(inp)
    age = keras.layers.Dense(1, name="age", kernel_initializer="zeros",
                             bias_initializer=keras.initializers.Constant(40.0))(flat)  # always 40
    gender = keras.layers.Dense(1, activation="sigmoid", name="gender")(flat)
    path = tmp_path / "other.keras"
    keras.Model(inp, [age, gender]).save(path)
    soft = teacher_targets(path, read_cache(tiny_cache).images[:3], sigma=3.0)
    assert soft.source.startswith("Gaussian")
    np.testing.assert_allclose((soft.age_dist * np.arange(N_AGES)).sum(1), 40.0, rtol=1e-4)


def test_soft_targets_are_blended(tiny_cache):
    data = read_cache(tiny_cache)
    n = len(data)
    soft = (np.full((n, N_AGES), 1.0 / N_AGES, np.float32), np.full(n, 0.5, np.float32))
    plain = FaceBatches(data.images, data.age, data.gender, 4)[0][1]
    blended = FaceBatches(data.images, data.age, data.gender, 4, soft=soft, soft_weight=0.25)[0][1]
    np.testing.assert_allclose(blended["age_dist"], 0.75 * plain["age_dist"] + 0.25 / N_AGES, rtol=1e-5)
    np.testing.assert_allclose(blended["gender"], 0.75 * plain["gender"] + 0.125, rtol=1e-6)
    np.testing.assert_array_equal(blended["age"], plain["age"])  # the metric still sees the true age
    with pytest.raises(ValueError, match="differ in length"):
        FaceBatches(data.images, data.age, data.gender, 4, soft=(soft[0][:2], soft[1][:2]))


def test_teacher_from_another_split_is_refused(tmp_path):
    teacher = tmp_path / "age_gender_B.keras"
    teacher.write_bytes(b"")
    student = RunSplit(train=["a.jpg", "b.jpg"], val=["c.jpg"])
    # A teacher from before runs recorded their split: the settings are compared.
    (tmp_path / "args.json").write_text(json.dumps({"full": True, "seed": 0, "val_split": 0.2}))
    with pytest.raises(ValueError, match="seen this run's validation images"):
        check_teacher_split(teacher, student)
    check_teacher_split(teacher, RunSplit(train=["a.jpg"], val=[], full=True))  # a --full student: nothing to leak
    (tmp_path / "args.json").write_text(json.dumps({"full": False, "seed": 0, "val_split": 0.2}))
    check_teacher_split(teacher, student)
    # The same settings over a cache that lacked a file give another split: the recorded names catch it.
    write_run_split(tmp_path, RunSplit(train=["a.jpg", "c.jpg"], val=["b.jpg"]))
    with pytest.raises(ValueError, match="trained on 1 of this run's 1 validation images"):
        check_teacher_split(teacher, student)
    write_run_split(tmp_path, RunSplit(train=["a.jpg", "b.jpg"], val=["c.jpg"]))
    check_teacher_split(teacher, student)


def test_student_trains_from_a_teacher(tiny_models, tiny_cache, tmp_path):
    res = train(quick_config("scratch", tiny_cache, tmp_path, teacher=str(tiny_models["B"]), epochs=1))
    assert res.model_path.exists() and any("distilling from" in n for n in res.notes)
    assert json.loads((res.run_dir / "args.json").read_text())["teacher"] == str(tiny_models["B"])

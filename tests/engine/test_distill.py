"""Distillation: a teacher's predictions blended into the student's targets."""

import json

import keras
import numpy as np
import pytest

from facekit.contract import N_AGES, rgb_to_input
from facekit.data.cache import read_cache
from facekit.data.dataset import FaceBatches
from facekit.data.split import RunSplit, write_run_split
from facekit.engine.distill import check_teacher_split, mean_targets, teacher_targets
from facekit.engine.recipe import TrainConfig
from facekit.engine.runs import read_history
from facekit.engine.train import train
from facekit.model.ensemble import merge
from facekit.model.export import save_hand_in
from facekit.model.models import build_scratch
from tests.conftest import quick_config


@pytest.mark.slow
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
    assert check_teacher_split(teacher, student) is None


def test_teacher_that_cannot_be_checked_is_named(tmp_path):
    merged = tmp_path / "ensemble.keras"  # a merged file on its own: no split.json, no args.json beside it
    merged.write_bytes(b"")
    note = check_teacher_split(merged, RunSplit(train=["a.jpg"], val=["c.jpg"]))
    assert note is not None and str(merged) in note and "cannot check" in note
    assert check_teacher_split(merged, RunSplit(train=["a.jpg"], val=[], full=True)) is None


@pytest.mark.slow
def test_several_teachers_give_what_their_merged_file_gives(tiny_cache, tmp_path):
    paths = []
    for seed in (1, 2):  # two differently initialised members, so the mean is not either one
        keras.utils.set_random_seed(seed)
        paths.append(tmp_path / f"m{seed}" / "age_gender_A.keras")
        save_hand_in(build_scratch(widths=(8, 8, 16, 16, 16), hidden=16).export, paths[-1])
    merged = tmp_path / "ensemble.keras"
    save_hand_in(merge([keras.models.load_model(p) for p in paths]), merged)
    images = read_cache(tiny_cache).images[:6]
    one = [teacher_targets(p, images) for p in paths]
    mean, from_file = mean_targets(one), teacher_targets(merged, images)
    assert from_file.source == "the mean of 2 members' age_dist layers" and mean.source.startswith("the mean of 2")
    assert np.abs(one[0].age_dist - one[1].age_dist).max() > 1e-4  # the members differ
    np.testing.assert_allclose(mean.age_dist, from_file.age_dist, atol=1e-6)
    np.testing.assert_allclose(mean.p_female, from_file.p_female, atol=1e-5)
    np.testing.assert_allclose(mean.age_dist.sum(1), 1.0, rtol=1e-5)
    assert mean_targets(one[:1]) is one[0]


def test_teachers_in_args_json(tmp_path):
    old = tmp_path / "args.json"  # a run from before several teachers: one "teacher" string
    old.write_text(json.dumps({"task": "scratch", "teacher": "runs/finetune/exp/age_gender_B.keras"}))
    assert TrainConfig.load(old).teachers == ("runs/finetune/exp/age_gender_B.keras",)
    assert TrainConfig(teachers="b.keras").teachers == ("b.keras",)  # benchmarks' --set teachers=PATH
    assert TrainConfig(teachers=["a.keras", "b.keras"]).to_json()["teachers"] == ["a.keras", "b.keras"]
    (tmp_path / "b.keras").write_bytes(b"")
    with pytest.raises(ValueError, match="named twice"):
        TrainConfig.for_task("scratch", teachers=[str(tmp_path / "b.keras")] * 2)


@pytest.mark.slow
def test_student_trains_from_teachers(tiny_models, tiny_cache, tmp_path):
    teachers = [str(tiny_models["B"]), str(tiny_models["B_swapped"])]  # either output order
    res = train(quick_config("scratch", tiny_cache, tmp_path, teachers=teachers, epochs=1))
    assert res.model_path.exists() and any("distilling from" in n and "mean of 2 teachers" in n for n in res.notes)
    assert json.loads((res.run_dir / "args.json").read_text())["teachers"] == teachers
    # Soft gender targets are scored by the label they stand for (BinaryAccuracy read 0.0 here)
    assert read_history(res.run_dir / "history.csv")[-1]["gender_accuracy"] > 0

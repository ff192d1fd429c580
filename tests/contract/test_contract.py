"""The lecturer's scoring rule and reading of the outputs, defined once in facekit.contract."""

import re
from pathlib import Path

import numpy as np

from facekit.contract import GENDER_THRESHOLD, hand_in_scores, output_roles, predicted_female

PACKAGE = Path(__file__).resolve().parents[2] / "facekit"


def test_gender_reads_female_from_one_half_up():
    assert predicted_female(0.5) and not predicted_female(0.4999)
    assert predicted_female(np.array([0.2, 0.5, 0.9])).tolist() == [False, True, True]


def test_hand_in_scores_are_mae_and_accuracy():
    mae, acc = hand_in_scores([10, 20, 30, 40], [12, 20, 27, 40], [1, 0, 1, 0], [0.7, 0.5, 0.49, 0.1])
    assert mae == 1.25 and acc == 0.5


def test_the_threshold_is_written_nowhere_else():
    pattern = re.compile(r"(p_female|gender|\bg)\w*\s*(>=|>|<|<=)\s*0\.5\b")
    found = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py") if p.parts[-2] != "contract"
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, f"use facekit.contract.predicted_female (threshold {GENDER_THRESHOLD}): {found}"


def test_output_roles_by_name_then_activation():
    def out(name, activation, units=1):
        return {"name": name, "layer": {"activation": activation, "units": units}}

    assert output_roles([out("age", "linear"), out("gender", "sigmoid")])[0] == ["age", "gender"]
    assert output_roles([out("x", "sigmoid"), out("y", "linear")])[0] == ["gender", "age"]
    assert output_roles([out("x", "linear"), out("y", "linear")])[0] is None


def test_exported_layer_names_are_written_once():
    found = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py") if p.parts[-2] != "contract"
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"[\"'](age_dist|flip_average)[\"']", line)]
    assert not found, f"use facekit.contract.AGE_DISTRIBUTION / FLIP_AVERAGE: {found}"


def test_one_cache_folder_for_everything(monkeypatch, tmp_path):
    from facekit.contract.keras_envs import env_root
    from facekit.inference.litert import cache_dir
    from facekit.utils.modelfiles import default_model_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("FACEKIT_KERAS_ENVS", raising=False)
    assert {default_model_dir().parent, env_root().parent, cache_dir().parent} == {tmp_path / "facekit"}

"""The exported contract: what the lecturer's hidden code feeds a hand-in file and reads back.

The one home of these facts (timm keeps a model's input size and scaling
beside its weights for the same reason): prep, the dataset, the models,
export, check, predict and evaluate import them instead of restating them,
so a change here is a change everywhere. The source is
``../shared/docs/coursework.md``: the test code loads each file with plain
``keras.models.load_model``, reads every image with ``cv2.imread`` (BGR) and
divides by 255, and scores age by MAE and gender (one sigmoid unit) by accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

INPUT_SIZE = 128
INPUT_SHAPE = (INPUT_SIZE, INPUT_SIZE, 3)
INPUT_DTYPE = "float32"
CHANNEL_ORDER = "BGR"  # cv2.imread's order; the cache stores RGB
PIXEL_SCALE = 255.0  # the lecturer divides by 255: inputs are in [0, 1]

MAX_AGE = 116  # UTKFace's ages are 0..116
N_AGES = MAX_AGE + 1

# Layer names the exported graphs and the training model share; modules use these, never the strings.
AGE_DISTRIBUTION = "age_dist"  # the softmax over ages 0..116 (a training target, and what merges average)
RACE = "race"  # the auxiliary race softmax of --race-weight: a training output only, never in an exported file
N_RACES = 5  # UTKFace's race field: 0..4
FLIP_AVERAGE = "flip_average"  # the layer that averages an image's features with its mirror's (--tta)
OUTPUT_NAMES = ("age", "gender")  # age in years; gender is P(female), one sigmoid unit
OUTPUT_ORDERS = ("age,gender", "gender,age")  # published solutions use both; most (and the best) age first
DEFAULT_OUTPUT_ORDER = OUTPUT_ORDERS[0]

# The hand-in file names the coursework fixes, by training task; the letter is the model's kind.
HAND_IN_NAMES = {"scratch": "age_gender_A.keras", "finetune": "age_gender_B.keras"}
KIND_TASKS = {"A": "scratch", "B": "finetune"}

MAX_FIRST_FC_MAP = 10  # Model A: the map fed to the first fully connected layer must be smaller than 10 x 10

GENDER_THRESHOLD = 0.5  # P(female) at or above it reads as female, as the lecturer's code reads the sigmoid


def predicted_female(p_female: Any) -> Any:
    """The lecturer's reading of the gender output: female when P(female) >= 0.5 (scalars and arrays alike)."""
    return p_female >= GENDER_THRESHOLD


def hand_in_scores(true_ages: Any, pred_ages: Any, true_female: Any, p_female: Any) -> tuple[float, float]:
    """The lecturer's two figures, the one scoring rule of facekit: (age MAE in years, gender accuracy)."""
    true_ages, pred_ages = np.asarray(true_ages, dtype=np.float64), np.asarray(pred_ages, dtype=np.float64)
    female = np.asarray(predicted_female(np.asarray(p_female, dtype=np.float64)))
    right = female == np.asarray(true_female).astype(bool)
    return float(np.abs(pred_ages - true_ages).mean()), float(right.mean())


# Keras versions a hand-in file must load on. The lecturer's runtime is not ours: Colab shipped 3.8.0 until
# mid-2025, 3.10.0 until early 2026 and 3.13.2 since (../shared/docs/findings.md). facekit.model.compat holds the
# config keys newer Keras writes and older Keras rejects; `facekit check --keras` loads a file on these.
# 3.5 (August 2024) is as far back as the key table was measured, and exports loaded there as they are.
OLDEST_KERAS = "3.5"
OLDEST_TRAINING_KERAS = "3.7"  # what facekit runs on (pyproject); its files still load on OLDEST_KERAS
CHECK_KERAS = ("3.5", "3.8", "3.10", "3.13")  # the oldest supported, then Colab's since 2025


def check_output_order(output_order: str) -> None:
    if output_order not in OUTPUT_ORDERS:
        raise ValueError(f"output order must be one of {', '.join(OUTPUT_ORDERS)}, got {output_order!r}")


def in_output_order(age: Any, gender: Any, output_order: str = DEFAULT_OUTPUT_ORDER) -> list[Any]:
    """The two outputs as a file lists them."""
    check_output_order(output_order)
    return [age, gender] if output_order == DEFAULT_OUTPUT_ORDER else [gender, age]


def read_bgr(path: str | Path) -> np.ndarray | None:
    """An image as the lecturer's code reads it: ``cv2.imread`` (BGR uint8), or None if it cannot."""
    import cv2  # lazy: OpenCV costs a CLI start-up that only parses options

    return cv2.imread(str(path))


def lecturer_image(path: str | Path, size: int = INPUT_SIZE) -> tuple[np.ndarray | None, bool]:
    """One image as every facekit command that reads "like the lecturer" reads it: ``cv2.imread`` (BGR uint8),
    resized to size x size with area interpolation when it is another size (the course's chips are 128 x 128;
    any other image is resized, and said to be, rather than skipped). Returns (image or None, resized)."""
    import cv2  # lazy: OpenCV costs a CLI start-up that only parses options

    img = read_bgr(path)
    if img is None or img.shape[:2] == (size, size):
        return img, False
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA), True


def bgr_to_input(bgr_uint8: np.ndarray) -> np.ndarray:
    """BGR uint8 (..., H, W, 3) -> the model input: ``img / 255.0`` in float32.

    Dividing in float32 gives the same bits as the lecturer's float64 ``/ 255.0``
    cast to float32 for every value 0..255 (tested), at half the memory.
    """
    return np.asarray(bgr_uint8, np.float32) / np.float32(PIXEL_SCALE)


def rgb_to_input(rgb_uint8: np.ndarray) -> np.ndarray:
    """RGB uint8 (..., H, W, 3), as the cache stores crops -> what ``cv2.imread(path) / 255.0`` gives."""
    return bgr_to_input(rgb_uint8[..., ::-1])


def hand_in_kind(path: str | Path) -> str | None:
    """A or B from a hand-in style file name (``*_A.keras`` / ``*_B.keras``), else None."""
    stem = Path(path).name.lower()
    for kind in KIND_TASKS:
        if stem.endswith(f"_{kind.lower()}.keras"):
            return kind
    return None


def is_sigmoid_unit(layer: dict[str, Any]) -> bool:
    return layer.get("activation") == "sigmoid" and layer.get("units") in (1, None)


def output_roles(outputs: list[dict[str, Any]]) -> tuple[list[str] | None, str]:
    """Which output is age and which is gender: by name, else by activation (gender is the sigmoid)."""
    names = [o["name"].lower() for o in outputs]
    if len(outputs) != 2:
        return None, f"{len(outputs)} outputs"
    if sorted(names) == ["age", "gender"]:
        return names, "by output names"
    sig = [is_sigmoid_unit(o["layer"]) for o in outputs]
    if sig.count(True) == 1:
        return (["gender", "age"] if sig[0] else ["age", "gender"]), "by activation (names do not say)"
    return None, "cannot tell which output is age (names and activations do not say)"

import json
import shutil
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facekit.evaluate import evaluate, load_labelled
from facekit.inference import load
from facekit.labels import parse_name
from facekit_cli.main import app

runner = CliRunner()


@pytest.fixture()
def labelled(chip_folder: Path, chip_sample: list[Path]) -> Path:
    """chip_folder's chips less one, plus a three-field name (not scored) and a 200 x 200 image (resized)."""
    (chip_folder / chip_sample[10].name).unlink()
    shutil.copy(chip_sample[0], chip_folder / "39_1_20170116174525125.jpg.chip.jpg")
    Image.open(chip_sample[11]).resize((200, 200)).save(chip_folder / chip_sample[11].name)
    return chip_folder


def test_scores_equal_a_hand_computation(labelled: Path, tiny_models):
    data = load_labelled(labelled)
    assert len(data.names) == 11 and len(data.resized) == 1 and len(data.rejected) == 1
    report, _ = evaluate([load(tiny_models["A"])], data)
    # By hand, the lecturer's way.
    model = keras.models.load_model(tiny_models["A"])
    names = sorted(p.name for p in labelled.iterdir() if not p.name.startswith("39_1_"))
    x = np.stack([cv2.resize(cv2.imread(str(labelled / n)), (128, 128), interpolation=cv2.INTER_AREA)
                  for n in names]) / 255.0
    age, gender = model.predict(x.astype("float32"), verbose=0)
    labels = [parse_name(n) for n in names]
    mae = np.mean([abs(lab.age - a) for lab, a in zip(labels, age[:, 0])])
    acc = np.mean([(g >= 0.5) == lab.gender for lab, g in zip(labels, gender[:, 0])])
    m = report["models"]["A"]
    assert m["mae"] == pytest.approx(mae, rel=1e-5) and m["gender_accuracy"] == pytest.approx(acc)
    assert sum(b["n"] for b in m["mae_by_band"].values()) == 11
    assert np.sum(m["confusion"]["matrix"]) == 11 and len(m["worst"]) == 10
    assert any("resized" in w for w in report["warnings"])


def test_swapped_outputs_are_scored_by_name(labelled: Path, tiny_models):
    data = load_labelled(labelled)
    normal, swapped = load(tiny_models["B"]), load(tiny_models["B_swapped"], label="swapped")
    assert swapped.note and "order ['gender', 'age']" in swapped.note
    report, _ = evaluate([normal, swapped], data, tta=True)
    a, b = report["models"]["B"], report["models"]["swapped"]
    assert a["mae"] == pytest.approx(b["mae"]) and a["gender_accuracy"] == b["gender_accuracy"]
    assert any("order" in w for w in report["warnings"])
    assert {"mae", "gender_accuracy"} <= set(a["tta"])


def test_split_val_scores_the_held_out_part(labelled: Path):
    from facekit.split import template_split

    names = sorted(p.name for p in labelled.iterdir() if not p.name.startswith("39_1_"))
    _, va = template_split(names)
    val = load_labelled(labelled, split="val")
    assert val.names == [names[i] for i in va] and len(val.names) == 3
    assert len(load_labelled(labelled, split="train").names) == 8


def test_bands():
    from facekit.labels import age_band

    assert [age_band(a) for a in (0, 10, 11, 20, 70, 71, 116)] == ["0-10", "0-10", "11-20", "11-20", "61-70",
                                                                    "70+", "70+"]


def test_evaluate_cli(labelled: Path, tiny_models, tmp_path: Path):
    runs = str(tiny_models["runs"])
    res = runner.invoke(app, ["evaluate", "A", "B", "--data", str(labelled), "--project", runs, "--tta",
                              "--plots", str(tmp_path / "plots"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out["models"]) == {"A", "B"} and out["images"] == 11 and out["rejected"][0]["reason"] == "missing-field"
    assert {Path(p).name for p in out["plots"]} == {"age_scatter.png", "mae_by_band.png", "worst_A.png", "worst_B.png"}
    text = runner.invoke(app, ["evaluate", "B", "--data", str(labelled), "--project", runs])
    assert text.exit_code == 0 and "age MAE" in text.stdout and "not scored" in text.stdout
    bad = runner.invoke(app, ["evaluate", "B", "--data", str(tmp_path / "nope"), "--project", runs])
    assert bad.exit_code == 1 and "not a directory" in bad.stderr

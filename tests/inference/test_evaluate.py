import json
import shutil
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facekit.data.labelled import load_labelled
from facekit.data.labels import parse_name
from facekit.inference.evaluate import evaluate
from facekit.inference.load import load
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


@pytest.mark.slow
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
    from facekit.data.split import template_split

    names = sorted(p.name for p in labelled.iterdir() if not p.name.startswith("39_1_"))
    _, va = template_split(names)
    val = load_labelled(labelled, split="val")
    assert val.names == [names[i] for i in va] and len(val.names) == 3
    assert len(load_labelled(labelled, split="train").names) == 8


def test_bands():
    from facekit.data.labels import age_band

    assert [age_band(a) for a in (0, 10, 11, 20, 70, 71, 116)] == ["0-10", "0-10", "11-20", "11-20", "61-70",
                                                                    "70+", "70+"]


@pytest.mark.slow
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


@pytest.mark.slow
def test_split_val_scores_exactly_what_the_run_held_out(tiny_cache: Path, tmp_path: Path):
    from facekit.data.split import count_twins, read_run_split, template_split
    from facekit.engine.train import train
    from tests.conftest import quick_config

    # A cache missing some of the folder's files (here --limit) splits differently from the folder:
    # re-splitting the folder would score training images as "held out".
    res = train(quick_config("scratch", tiny_cache, tmp_path, epochs=1, limit=18, name="limited"))
    recorded = read_run_split(res.run_dir)
    assert recorded is not None and len(recorded.val) == res.metrics["val_images"] == 4
    assert res.metrics["val_twins_in_train"] == recorded.val_twins_in_train == 0
    folder = tiny_cache.parent / "faces"
    names = sorted(p.name for p in folder.iterdir())
    resplit = {names[i] for i in template_split(names)[1]}
    assert set(recorded.val) & set(recorded.train) == set()
    assert resplit & set(recorded.train)  # what the old evaluate scored as held out
    out = runner.invoke(app, ["evaluate", str(res.model_path), "--data", str(folder), "--split", "val", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["images"] == 4 and report["split"]["source"].endswith("limited/split.json")
    assert {w["file"] for m in report["models"].values() for w in m["worst"]} == set(recorded.val)
    assert report["split"]["val_twins_in_train"] == 0

    # Models validated on different images are not scored together; --run needs a recorded split.
    other = train(quick_config("scratch", tiny_cache, tmp_path, epochs=1, limit=20, name="other"))
    both = runner.invoke(app, ["evaluate", str(res.model_path), str(other.model_path), "--data", str(folder),
                               "--split", "val"])
    assert both.exit_code == 1 and "validated on different images" in both.output
    picked = runner.invoke(app, ["evaluate", str(res.model_path), str(other.model_path), "--data", str(folder),
                                 "--split", "val", "--run", str(other.run_dir), "--json"])
    assert picked.exit_code == 0 and json.loads(picked.output)["images"] == 4
    bare = runner.invoke(app, ["evaluate", str(res.model_path), "--data", str(folder), "--split", "val",
                               "--run", str(tmp_path)])
    assert bare.exit_code == 1 and "no split.json" in bare.output
    # A folder without the listed images is refused, not silently scored on what is there.
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    (partial / recorded.val[0]).unlink()
    missing = runner.invoke(app, ["evaluate", str(res.model_path), "--data", str(partial), "--split", "val"])
    assert missing.exit_code == 1 and "1 of the 4 images the split lists are not in this folder" in missing.output
    assert count_twins(["a", "b", "c"], ["c", "d", "a", ""]) == 2


@pytest.mark.slow
def test_a_truncated_jpeg_gets_one_verdict_everywhere(labelled: Path, tiny_models, tmp_path: Path):
    from facekit.data.imageio import damage
    from facekit.inference.predict import predict
    from facekit.prep.pipeline import prep

    victim = sorted(p for p in labelled.iterdir() if p.name.endswith(".chip.jpg"))[2]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    assert cv2.imread(str(victim)) is not None  # the lecturer's reader decodes it, half grey, without a word
    verdict = damage(victim)
    assert verdict and "truncated" in verdict and str(victim) in verdict
    report = prep(labelled, tmp_path / "c.h5", workers=1).report
    assert {"file": victim.name, "reason": verdict} in report["unreadable"]
    assert predict([victim], [load(tiny_models["A"])])[0].error == verdict
    out = runner.invoke(app, ["evaluate", "A", "--data", str(labelled), "--project", str(tiny_models["runs"]),
                              "--json"])
    got = json.loads(out.output)
    assert got["damaged"] == [verdict] and any("1 damaged images" in w for w in got["warnings"])
    assert victim.name in load_labelled(labelled).names  # still scored, as the lecturer's code would

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facekit.inference import load, load_all, newest_model, resolve_model
from facekit.predict import predict
from facekit_cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def loaded(tiny_models):
    return [load(tiny_models["A"]), load(tiny_models["B"])]


@pytest.fixture()
def photos(tmp_path: Path, chip_sample: list[Path]) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    chips = [np.asarray(Image.open(p)) for p in chip_sample[4:8]]
    Image.fromarray(np.concatenate(chips, axis=1)).save(d / "group.jpg")  # four faces side by side
    Image.fromarray(chips[0]).save(d / "chip.png")  # a face filling the frame
    Image.fromarray(chips[1]).convert("RGBA").save(d / "rgba.png")
    Image.new("RGB", (300, 200), (90, 90, 90)).save(d / "blank.jpg")
    (d / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    return d


def test_group_photo_faces_left_to_right(photos: Path, loaded):
    (res,) = predict([photos / "group.jpg"], loaded)
    assert res.error is None and len(res.faces) == 4
    centres = [(f.box[0] + f.box[2]) / 2 for f in res.faces]
    assert centres == sorted(centres)
    assert [int(c // 128) for c in centres] == [0, 1, 2, 3]  # each face inside its own chip
    for f in res.faces:
        assert set(f.predictions) == {"A", "B"}
        for p in f.predictions.values():
            assert p["gender"] in ("male", "female") and 0 <= p["p_female"] <= 1 and np.isfinite(p["age"])


def test_folder_odd_inputs_and_annotation(photos: Path, loaded, tmp_path: Path):
    results = {Path(r.path).name: r for r in predict([photos], loaded, annotate_dir=tmp_path / "ann")}
    assert set(results) == {"group.jpg", "chip.png", "rgba.png", "blank.jpg", "broken.jpg"}
    assert len(results["chip.png"].faces) == 1 and len(results["rgba.png"].faces) == 1
    assert "no face found" in results["blank.jpg"].error and "blank.jpg" in results["blank.jpg"].error
    assert "not an image" in results["broken.jpg"].error
    assert Path(results["group.jpg"].annotated).is_file() and results["blank.jpg"].annotated is None


def test_same_named_models_keep_their_own_columns(tiny_models, tmp_path):
    other = tmp_path / "b_other" / "age_gender_B.keras"
    other.parent.mkdir()
    other.write_bytes(tiny_models["B"].read_bytes())
    twin = tmp_path / "twin" / "b_other" / "age_gender_B.keras"
    twin.parent.mkdir(parents=True)
    twin.write_bytes(tiny_models["B"].read_bytes())
    labels = [m.label for m in load_all([tiny_models["A"], tiny_models["B"], other, twin])]
    assert labels == ["A", "B (exp)", "B (b_other) #3", "B (b_other) #4"]


def test_model_resolution(tiny_models):
    runs = tiny_models["runs"]
    assert newest_model("A", runs) == tiny_models["A"]
    newer = runs / "finetune" / "exp2" / "age_gender_B.keras"
    newer.parent.mkdir()
    newer.write_bytes(tiny_models["B"].read_bytes())
    later = time.time() + 10
    os.utime(newer, (later, later))
    assert resolve_model("b", runs) == newer
    newer.unlink()
    with pytest.raises(FileNotFoundError, match="facekit train scratch"):
        newest_model("A", runs / "empty")
    with pytest.raises(FileNotFoundError, match="no such model"):
        resolve_model("missing.keras", runs)


def test_predict_cli(photos: Path, tiny_models):
    runs = str(tiny_models["runs"])
    res = runner.invoke(app, ["predict", str(photos / "group.jpg"), str(photos / "blank.jpg"),
                              "--model", "A", "--model", "B", "--project", runs, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out["models"]) == {"A", "B"} and len(out["images"][0]["faces"]) == 4
    assert out["images"][1]["error"].endswith("no face found")
    text = runner.invoke(app, ["predict", str(photos / "chip.png"), "--project", runs])
    assert text.exit_code == 0 and "model B:" in text.stdout and "chip.png" in text.stdout
    nothing = runner.invoke(app, ["predict", str(photos / "blank.jpg"), "--project", runs])
    assert nothing.exit_code == 1 and "no face found" in nothing.stderr
    none_trained = runner.invoke(app, ["predict", str(photos / "chip.png"), "--project", str(photos)])
    assert none_trained.exit_code == 1 and "facekit train finetune" in none_trained.stderr

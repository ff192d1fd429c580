import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facekit.inference.load import load, load_all, newest_model, resolve_model
from facekit.inference.predict import predict
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_predict_cli(photos: Path, tiny_models):
    runs = str(tiny_models["runs"])
    res = runner.invoke(app, ["predict", str(photos / "group.jpg"), str(photos / "blank.jpg"),
                              "--model", "A", "--model", "B", "--project", runs, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [m["label"] for m in out["models"]] == ["A", "B"]
    faces = [r for r in out["records"] if r["status"] == "ok"]
    assert len(faces) == 8 and {r["face"] for r in faces} == {0, 1, 2, 3}  # four faces, two models each
    (blank,) = [r for r in out["records"] if r["image"].endswith("blank.jpg")]
    assert blank["status"] == "no_face" and blank["error"].endswith("no face found")
    assert out["summary"]["faces"] == 4 and out["summary"]["no_face"] == 1
    text = runner.invoke(app, ["predict", str(photos / "chip.png"), "--project", runs])
    assert text.exit_code == 0 and "model B:" in text.stdout and "chip.png" in text.stdout
    assert "1 face in 1 of 1 image" in text.stderr
    nothing = runner.invoke(app, ["predict", str(photos / "blank.jpg"), "--project", runs])
    assert nothing.exit_code == 1 and "no face found" in nothing.stderr
    none_trained = runner.invoke(app, ["predict", str(photos / "chip.png"), "--project", str(photos)])
    assert none_trained.exit_code == 1 and "facekit train finetune" in none_trained.stderr


def _validator(definition: str):
    import jsonschema

    from facekit.inference.records import load_schema

    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{definition}"})


@pytest.mark.slow
def test_streamed_records_follow_the_documented_schema(photos: Path, tiny_models, tmp_path: Path):
    """--jsonl and --csv on a folder with bad files: a valid record for every image, in folder order."""
    from facekit.inference.records import CSV_COLUMNS, csv_row

    (photos / "empty.jpg").write_bytes(b"")
    args = ["predict", str(photos), "-m", str(tiny_models["A"]), "-m", str(tiny_models["B"])]
    res = runner.invoke(app, [*args, "--jsonl"])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in res.stdout.splitlines()]
    validator = _validator("record")
    for r in records:
        errors = [e.message for e in validator.iter_errors(r)]
        assert not errors, (r, errors)
    status = {Path(r["image"]).name: r["status"] for r in records}
    assert status == {"blank.jpg": "no_face", "broken.jpg": "unreadable", "chip.png": "ok", "empty.jpg": "unreadable",
                      "group.jpg": "ok", "rgba.png": "ok"}
    assert [Path(r["image"]).name for r in records] == sorted(Path(r["image"]).name for r in records)
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) == 2 * 6 and {r["model"] for r in ok} == {"A", "B"}
    assert all(len(r["model_sha256"]) == 64 and r["width"] > 0 for r in ok)
    assert "2 unreadable" in res.stderr and "1 without a face" in res.stderr and "faces/s" in res.stderr
    as_csv = runner.invoke(app, [*args, "--csv", "-o", str(tmp_path / "out.csv")])
    assert as_csv.exit_code == 0, as_csv.output
    import csv

    with open(tmp_path / "out.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1:] == [[str(v) for v in csv_row(r)] for r in records]  # the same records, flattened
    doc = runner.invoke(app, [*args, "-o", str(tmp_path / "out.json")])  # format from the suffix
    assert doc.exit_code == 0, doc.output
    data = json.loads((tmp_path / "out.json").read_text())
    assert not [e.message for e in _validator("document").iter_errors(data)]
    assert data["records"] == records and data["summary"]["images"] == 6


def test_output_options_refused_with_a_reason(photos: Path, tiny_models, tmp_path: Path):
    base = ["predict", str(photos / "chip.png"), "-m", str(tiny_models["B"])]
    both = runner.invoke(app, [*base, "--json", "--csv"])
    assert both.exit_code == 2 and "choose one output format" in both.stderr
    odd = runner.invoke(app, [*base, "-o", str(tmp_path / "out.txt")])
    assert odd.exit_code == 2 and "out.txt" in odd.stderr and not (tmp_path / "out.txt").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runner.invoke(app, ["predict", str(empty), "-m", str(tiny_models["B"])])
    assert nothing.exit_code == 1 and "no image or video files" in nothing.stderr


def test_batched_predictions_equal_one_at_a_time(photos: Path, loaded, chip_sample: list[Path]):
    from facekit.inference.predict import Predictor, expand_inputs

    files = [*expand_inputs([photos]), *chip_sample[:6]]
    with Predictor(loaded, batch_size=32) as predictor:
        batched = list(predictor.stream(files))
        single = [predictor.image(f) for f in files]
    assert [r.path for r in batched] == [str(f) for f in files]
    assert sum(len(r.faces) for r in batched) == 6 + 6
    for b, s in zip(batched, single):
        assert (b.status, b.error, len(b.faces)) == (s.status, s.error, len(s.faces))
        for fb, fs in zip(b.faces, s.faces):
            np.testing.assert_allclose(fb.box, fs.box)
            for label in fb.predictions:
                assert fb.predictions[label]["age"] == pytest.approx(fs.predictions[label]["age"], abs=0.11)
                assert fb.predictions[label]["p_female"] == pytest.approx(fs.predictions[label]["p_female"],
                                                                          abs=2e-4)


def test_compiled_run_pads_and_chunks_without_changing_answers(loaded, chip_sample: list[Path]):
    from facekit.contract import rgb_to_input
    from facekit.data.imageio import square_resize
    from facekit.inference.load import run

    x = rgb_to_input(np.stack([square_resize(np.asarray(Image.open(p).convert("RGB"))) for p in chip_sample[:11]]))
    for lm in loaded:
        one = np.stack([np.concatenate(run(lm, x[i : i + 1], batch_size=1)) for i in range(len(x))])
        for bs in (4, 8, 64):  # chunks of 4 (the last padded to 4), 8 (+3 padded to 4) and one padded chunk of 16
            age, gender = run(lm, x, batch_size=bs)
            np.testing.assert_allclose(np.stack([age, gender], 1), one, rtol=1e-4, atol=1e-4)


def test_recursive_folders_and_awkward_photos(tmp_path: Path, chip_sample: list[Path], loaded):
    from facekit.inference.predict import expand_inputs, predict

    root = tmp_path / "holiday"
    (root / "day1").mkdir(parents=True)
    (root / ".thumbs").mkdir()
    chip = Image.open(chip_sample[2]).convert("RGB")
    chip.save(root / "top.jpg")
    chip.save(root / "day1" / "top.jpg")  # the same name in two folders: two annotations, not one
    chip.save(root / ".thumbs" / "hidden.jpg")
    assert [p.name for p in expand_inputs([root])] == ["top.jpg"]
    assert [p.relative_to(root).as_posix() for p in expand_inputs([root], recursive=True)] == ["day1/top.jpg",
                                                                                                "top.jpg"]
    # A 6000 x 4000 photo: searched at DETECT_MAX_SIDE, boxes in the photo's own pixels.
    big = Image.new("RGB", (6000, 4000), (40, 60, 80))
    big.paste(chip.resize((1024, 1024)), (3000, 1500))
    big.save(root / "big.jpg", quality=90)
    # Rotated on disk with an EXIF tag that says so; CMYK; 16-bit grey.
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    chip.rotate(90, expand=True).save(root / "exif.jpg", exif=exif.tobytes())
    chip.convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(np.asarray(chip.convert("L"), np.uint16) * 257).save(root / "grey16.png")
    results = {Path(r.path).relative_to(root).as_posix(): r
               for r in predict([root], loaded, recursive=True, annotate_dir=tmp_path / "ann")}
    assert set(results) == {"big.jpg", "cmyk.jpg", "day1/top.jpg", "exif.jpg", "grey16.png", "top.jpg"}
    for name, r in results.items():
        assert r.status == "ok" and len(r.faces) == 1, (name, r.error)
    (face,) = results["big.jpg"].faces
    x0, y0, x1, y1 = face.box
    assert 3000 < x0 < x1 < 4024 and 1500 < y0 < y1 < 2524, face.box  # full-resolution pixels
    assert results["big.jpg"].size == (6000, 4000)
    assert results["exif.jpg"].size == (chip.width, chip.height)  # as viewed, not as stored
    annotated = sorted(Path(r.annotated).name for r in results.values())
    assert len(set(annotated)) == 6 and "top-2.annotated.png" in annotated


@pytest.mark.slow
def test_litert_engine_agrees_with_keras_and_recovers(loaded, chip_sample: list[Path], tmp_path: Path, monkeypatch):
    import keras

    from facekit.contract import rgb_to_input
    from facekit.data.imageio import square_resize
    from facekit.inference import litert
    from facekit.inference.load import run
    from facekit.inference.predict import Predictor

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    x = rgb_to_input(np.stack([square_resize(np.asarray(Image.open(p).convert("RGB"))) for p in chip_sample[:5]]))
    for lm in loaded:
        twin = litert.accelerate(lm.model, lm.sha256)
        for bs in (1, 4, 64):
            np.testing.assert_allclose(np.stack(run(lm, x, batch_size=bs, engine=twin)), np.stack(run(lm, x)),
                                       atol=litert.AGREEMENT)
    cached = litert.cache_dir() / f"{loaded[0].sha256}.tflite"
    cached.write_bytes(b"damaged")  # a cache file cut short: converted again, not a crash
    litert.accelerate(loaded[0].model, loaded[0].sha256)
    assert cached.stat().st_size > 1000
    for i in range(3):
        (litert.cache_dir() / f"old{i}.tflite").write_bytes(b"x")
    litert._prune(litert.cache_dir(), keep=2)
    assert len(list(litert.cache_dir().glob("*.tflite"))) == 2
    # Where Keras cannot convert (here: another backend), auto falls back with a note and litert refuses.
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    for f in litert.cache_dir().glob("*.tflite"):
        f.unlink()
    with Predictor(loaded, engine="auto") as predictor:
        assert predictor.engines == {} and all("TensorFlow backend, not jax" in n for n in predictor.notes)
    with pytest.raises(ValueError, match="cannot predict with LiteRT"):
        Predictor(loaded, engine="litert")

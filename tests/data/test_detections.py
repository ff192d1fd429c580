"""Prep from saved detections: the same crops without MediaPipe, and clear refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facekit.data.cache import read_cache
from facekit.data.detections import DetectionsError, load_detections, save_detections
from facekit.prep.pipeline import prep
from facekit.prep.workers import PrepOptions

COLUMNS = ("filename", "images", "age", "gender", "score", "landmarks", "aligned", "n_faces", "content_sha256")


def _no_mediapipe(monkeypatch) -> list[str]:
    """Every way prep could start MediaPipe or fetch its files now fails, and is recorded."""
    from facekit.face import detect
    from facekit.utils import modelfiles

    tried: list[str] = []

    def refuse(*args, **kwargs):
        tried.append("mediapipe")
        raise RuntimeError("mediapipe is not installed here")

    monkeypatch.setattr(detect, "FaceFinder", refuse)
    monkeypatch.setattr(modelfiles, "ensure_model_file", refuse)
    return tried


def test_crops_from_saved_detections_equal_detected_ones_without_mediapipe(chip_folder: Path, tmp_path: Path,
                                                                          monkeypatch):
    detected = prep(chip_folder, tmp_path / "a.h5", workers=1, save_detections_to=tmp_path / "d.json")
    saved = json.loads((tmp_path / "d.json").read_text())
    assert saved["images"] == 12 and saved["options"] == {"min_confidence": 0.5, "pad_fraction": 0.25}
    assert sum(r["points"] is not None for r in saved["rows"].values()) == detected.report["counts"]["aligned"]

    tried = _no_mediapipe(monkeypatch)
    other = tmp_path / "elsewhere" / chip_folder.name  # another machine's copy of the folder
    shutil.copytree(chip_folder, other)
    res = prep(other, tmp_path / "b.h5", workers=1, detections=tmp_path / "d.json")
    assert tried == [] and res.from_detections == 12 and res.report["counts"]["from_detections"] == 12
    a, b = read_cache(tmp_path / "a.h5"), read_cache(tmp_path / "b.h5")
    for col in COLUMNS:
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col), err_msg=col)


def test_an_image_whose_pixels_differ_is_detected_or_reported(chip_folder: Path, chip_sample: list[Path],
                                                             tmp_path: Path, monkeypatch):
    prep(chip_folder, tmp_path / "a.h5", workers=1, save_detections_to=tmp_path / "d.json")
    changed = sorted(p.name for p in chip_folder.iterdir())[0]
    shutil.copy(chip_sample[13], chip_folder / changed)  # same name, other pixels: its saved points are wrong
    shutil.copy(chip_sample[14], chip_folder / chip_sample[14].name)  # a new image: no saved points at all

    res = prep(chip_folder, tmp_path / "b.h5", workers=1, detections=tmp_path / "d.json")  # MediaPipe here
    assert res.from_detections == 11 and len(read_cache(res.cache)) == 13
    fresh = read_cache(prep(chip_folder, tmp_path / "fresh.h5", workers=1).cache)
    for col in COLUMNS:
        np.testing.assert_array_equal(getattr(read_cache(res.cache), col), getattr(fresh, col), err_msg=col)

    (chip_folder / chip_sample[14].name).unlink()  # every name is saved, so MediaPipe starts only if needed
    tried = _no_mediapipe(monkeypatch)
    res = prep(chip_folder, tmp_path / "c.h5", workers=1, detections=tmp_path / "d.json")
    assert tried == ["mediapipe"]  # tried once, for the changed image, not again for the others
    assert [u["file"] for u in res.report["unreadable"]] == [changed] and len(read_cache(res.cache)) == 11
    assert "no saved detection matches its pixels" in res.report["unreadable"][0]["reason"]


def test_unusable_detections_files_are_refused_before_anything_is_written(chip_folder: Path, tmp_path: Path):
    prep(chip_folder, tmp_path / "a.h5", workers=1, save_detections_to=tmp_path / "d.json")
    out = tmp_path / "b.h5"
    with pytest.raises(DetectionsError, match="min confidence 0.5, this prep uses 0.7"):
        prep(chip_folder, out, PrepOptions(min_confidence=0.7), workers=1, detections=tmp_path / "d.json")
    with pytest.raises(DetectionsError, match="--no-align does not use them"):
        prep(chip_folder, out, PrepOptions(align=False), workers=1, detections=tmp_path / "d.json")
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(DetectionsError, match="not a facekit detections file"):
        load_detections(tmp_path / "bad.json", {"align": True})
    (tmp_path / "cut.json").write_text((tmp_path / "d.json").read_text()[:200])
    with pytest.raises(DetectionsError, match="cut.json: not a readable detections file"):
        load_detections(tmp_path / "cut.json", {"align": True})
    with pytest.raises(DetectionsError, match="no such detections file"):
        load_detections(tmp_path / "missing.json", {"align": True})
    assert not out.exists() and not list(tmp_path.glob("b.*"))
    prep(chip_folder, tmp_path / "raw.h5", PrepOptions(align=False), workers=1)
    with pytest.raises(DetectionsError, match="--no-align, so it holds no detections"):
        save_detections(tmp_path / "raw.h5", tmp_path / "none.json")
    assert not (tmp_path / "none.json").exists()


def test_cli_saves_and_uses_detections(chip_folder: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    saved = tmp_path / "d.json"
    first = runner.invoke(app, ["prep", str(chip_folder), "--out", str(tmp_path / "a.h5"), "--workers", "1",
                                "--save-detections", str(saved)])
    assert first.exit_code == 0, first.output
    assert f"detections: {saved}" in " ".join(first.output.split())
    again = runner.invoke(app, ["prep", str(chip_folder), "--out", str(tmp_path / "b.h5"), "--workers", "1",
                                "--detections", str(saved), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["report"]["counts"]["from_detections"] == 12
    bad = runner.invoke(app, ["prep", str(chip_folder), "--out", str(tmp_path / "c.h5"),
                              "--detections", str(tmp_path / "nope.json")])
    assert bad.exit_code != 0 and "nope.json: no such detections file" in " ".join(bad.output.split())
    assert "Traceback" not in bad.output

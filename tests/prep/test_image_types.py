"""One notion of an image file (issue 45, class 7): prep caches exactly the files predict reads from a folder."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
from PIL import Image

from facekit.data.imageio import IMAGE_SUFFIXES
from facekit.inference.predict import expand_inputs
from tests.conftest import run_cli


@pytest.mark.slow
def test_prep_and_predict_read_the_same_files(tmp_path: Path, chip_sample: list[Path]):
    folder = tmp_path / "faces"
    folder.mkdir()
    chip = Image.open(chip_sample[0]).convert("RGB")
    for i, suffix in enumerate(IMAGE_SUFFIXES):
        chip.save(folder / f"{30 + i}_0_1_2017{i:02d}{suffix.upper() if i % 2 else suffix}")
    (folder / "30_0_1_notes.txt").write_text("not an image")
    images = {p.name for p in expand_inputs([folder])}
    assert len(images) == len(IMAGE_SUFFIXES) and "30_0_1_notes.txt" not in images
    out = tmp_path / "c.h5"
    res = run_cli(["prep", str(folder), "-o", str(out), "-w", "1", "--json"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    with h5py.File(out) as f:
        cached = {n.decode() for n in f["filename"][...]}
    assert cached == images
    report = json.loads(out.with_name("c.report.json").read_text())
    assert [r["file"] for r in report["rejected"]] == ["30_0_1_notes.txt"]

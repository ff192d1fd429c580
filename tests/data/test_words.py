"""Messages a user can act on (issue 45, class 6): what is wrong with a file, in facekit's words, naming it;
library warnings that name no file never reach the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from facekit.data import imageio
from facekit.data.imageio import ImageReadError, read_rgb
from tests.conftest import ROOT, run_cli

NOISE = ("Corrupt EXIF", "Tag data larger than file", "DecompressionBomb", "Traceback")


def _bad_exif(path: Path) -> None:
    """A JPEG whose EXIF block promises a tag longer than the file (PIL warns, naming no file)."""
    exif = Image.Exif()
    exif[0x010E] = "x" * 100
    raw = bytearray(exif.tobytes())
    at = raw.find(b"\x01\x0e" if raw[6:8] == b"MM" else b"\x0e\x01")
    raw[at + 4: at + 8] = (100_000).to_bytes(4, "big" if raw[6:8] == b"MM" else "little")
    Image.new("RGB", (64, 64), (120, 80, 60)).save(path, exif=bytes(raw))


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory: pytest.TempPathFactory, chip_sample: list[Path]) -> Path:
    folder = tmp_path_factory.mktemp("words") / "faces"
    folder.mkdir()
    (folder / chip_sample[0].name).write_bytes(chip_sample[0].read_bytes())
    Image.new("L", (12_000, 10_000)).save(folder / "30_0_1_20170101000000001.png")  # 120 megapixels
    _bad_exif(folder / "30_0_1_20170101000000002.jpg")
    return folder


def test_permission_denied_is_not_called_corrupt(tmp_path: Path, monkeypatch):
    path = tmp_path / "30_0_1_x.jpg"
    Image.new("RGB", (8, 8)).save(path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(imageio.Image, "open", refuse)  # as root, chmod cannot make a file unreadable
    with pytest.raises(ImageReadError, match="permission denied") as info:
        read_rgb(path)
    assert "corrupt" not in str(info.value) and str(path) in str(info.value)


def test_a_huge_image_says_how_large(odd_folder: Path):
    with pytest.raises(ImageReadError, match=r"too large \(120 megapixels, limit 100\)"):
        read_rgb(odd_folder / "30_0_1_20170101000000001.png")
    assert read_rgb(odd_folder / "30_0_1_20170101000000002.jpg").shape == (64, 64, 3)  # EXIF unread, image used


@pytest.mark.slow
def test_prep_predict_and_evaluate_say_it_in_facekits_words(odd_folder: Path, tiny_models: dict[str, Path],
                                                            tmp_path: Path):
    """prep and predict each a fresh process with a timeout (the library warnings they must keep quiet are
    Python's, which pytest would catch in-process): the huge image is "too large" by name, the broken EXIF
    makes no noise. evaluate on a folder of malformed names lists them: a message of facekit's own, said the
    same in-process (``run_cli``)."""
    malformed = tmp_path / "malformed"
    malformed.mkdir()
    for name in ("face.jpg", "30_male_white.jpg", "200_0_1_2017.jpg"):
        Image.new("RGB", (128, 128)).save(malformed / name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    commands = {
        "prep": ["prep", str(odd_folder), "-o", str(tmp_path / "c.h5"), "-w", "1"],
        "predict": ["predict", str(odd_folder), "-m", str(tiny_models["A"]), "--jsonl", "--engine", "keras"],
    }

    def run(args):
        return subprocess.run([sys.executable, "-m", "facekit_cli.main", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        res = dict(zip(commands, pool.map(run, commands.values())))
    res["evaluate"] = run_cli(["evaluate", str(tiny_models["A"]), "--data", str(malformed)], tmp_path)
    for name, out in res.items():
        assert not any(n in out.stderr for n in NOISE), (name, out.stderr[-2000:])
    assert res["prep"].returncode == 0, res["prep"].stderr[-2000:]
    report = json.loads((tmp_path / "c.report.json").read_text())
    reasons = {u["file"]: u["reason"] for u in report["unreadable"]}
    assert "too large (120 megapixels, limit 100)" in reasons["30_0_1_20170101000000001.png"], reasons
    assert res["predict"].returncode == 0, res["predict"].stderr[-2000:]
    records = {Path(r["image"]).name: r for r in map(json.loads, res["predict"].stdout.splitlines())}
    assert "too large (120 megapixels" in records["30_0_1_20170101000000001.png"]["error"]
    said = " ".join(res["evaluate"].stderr.split())
    assert res["evaluate"].returncode == 1 and "no labelled image could be read (3 names rejected" in said, said
    assert all(n in said for n in ("face.jpg", "30_male_white.jpg", "200_0_1_2017.jpg")), said

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facekit.data.imageio import ImageReadError, read_rgb, square_resize


@pytest.fixture()
def base() -> Image.Image:
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:, :30] = (200, 10, 10)  # red left half, so orientation is visible
    return Image.fromarray(arr)


def test_exif_orientation_is_applied(tmp_path: Path, base: Image.Image):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    base.save(tmp_path / "r.jpg", exif=exif.tobytes())
    arr = read_rgb(tmp_path / "r.jpg")
    assert arr.shape == (60, 40, 3)
    assert arr[:25, :, 0].mean() > 150 and arr[-25:, :, 0].mean() < 60  # red half is now on top


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "1"])
def test_modes_become_rgb(tmp_path: Path, base: Image.Image, mode: str):
    ext = "jpg" if mode == "CMYK" else "png"
    base.convert(mode).save(tmp_path / f"x.{ext}")
    arr = read_rgb(tmp_path / f"x.{ext}")
    assert arr.shape == (40, 60, 3) and arr.dtype == np.uint8


def test_rgba_transparent_is_black(tmp_path: Path):
    Image.new("RGBA", (8, 8), (255, 255, 255, 0)).save(tmp_path / "t.png")
    assert read_rgb(tmp_path / "t.png").max() == 0


def test_16_bit_png_is_scaled(tmp_path: Path):
    arr16 = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(arr16).save(tmp_path / "g16.png")
    arr = read_rgb(tmp_path / "g16.png")
    assert arr.shape == (64, 64, 3) and 250 <= arr.max() <= 255 and arr.min() == 0


def test_progressive_jpeg(tmp_path: Path, base: Image.Image):
    base.save(tmp_path / "p.jpg", progressive=True, quality=90)
    assert read_rgb(tmp_path / "p.jpg").shape == (40, 60, 3)


def test_bad_files_name_file_and_reason(tmp_path: Path, base: Image.Image):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    base.save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    for name, words in [("empty.jpg", "empty"), ("text.jpg", "not an image"), ("cut.jpg", "truncated"),
                        ("missing.jpg", "not found")]:
        with pytest.raises(ImageReadError) as info:
            read_rgb(tmp_path / name)
        assert name in str(info.value) and words in str(info.value)


def test_square_resize():
    arr = np.zeros((200, 100, 3), np.uint8)
    assert square_resize(arr, 128).shape == (128, 128, 3)

from pathlib import Path

import pytest

from facekit.utils.modelfiles import FACE_DETECTOR, ModelFileError, ensure_model_file


def test_offline_copy_is_verified():
    assert ensure_model_file(FACE_DETECTOR).name == "blaze_face_short_range.tflite"


def test_checksum_mismatch_names_both_hashes(tmp_path: Path):
    (tmp_path / "mediapipe").mkdir()
    (tmp_path / "mediapipe" / "blaze_face_short_range.tflite").write_bytes(b"not the model")
    with pytest.raises(ModelFileError) as info:
        ensure_model_file(FACE_DETECTOR, tmp_path)
    msg = str(info.value)
    assert FACE_DETECTOR.sha256 in msg and "sha256" in msg and "FACEKIT_MODEL_DIR" in msg


def test_missing_in_named_dir_is_not_downloaded(tmp_path: Path):
    with pytest.raises(ModelFileError, match="not found"):
        ensure_model_file(FACE_DETECTOR, tmp_path)


def test_download_failure_explains_offline_use(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("FACEKIT_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def no_network(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(ModelFileError, match="could not download.*FACEKIT_MODEL_DIR"):
        ensure_model_file(FACE_DETECTOR)
    assert not list((tmp_path / "facekit" / "models").rglob("*.tflite"))

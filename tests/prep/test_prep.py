"""prep end to end on a small folder: cache schema, report, reuse, atomicity, bad input."""

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from facekit.data import cache as cache_mod
from facekit.data.cache import SCHEMA_VERSION, CacheError, read_cache
from facekit.prep.pipeline import prep
from facekit.prep.workers import PrepOptions


@pytest.fixture()
def messy_folder(chip_folder: Path, chip_sample: list[Path]) -> Path:
    first = sorted(chip_folder.iterdir())[0]
    shutil.copy(first, chip_folder / "39_1_20170116174525125.jpg.chip.jpg")  # 3 fields: rejected
    shutil.copy(first, chip_folder / "24_0_1_20170116220224657 .jpg.chip.jpg")  # repaired
    shutil.copy(first, chip_folder / "99_1_4_20170116220224658.jpg.chip.jpg")  # same pixels, other label
    (chip_folder / "30_0_0_20170116174525999.jpg.chip.jpg").write_bytes(b"\xff\xd8garbage")  # unreadable
    (chip_folder / "README.txt").write_text("not a face")
    from PIL import Image

    Image.new("RGB", (128, 128), (127, 127, 127)).save(chip_folder / "40_0_0_20170116174525998.jpg.chip.jpg")
    return chip_folder


def test_prep_builds_cache_and_report(messy_folder: Path, tmp_path: Path):
    out = tmp_path / "c.h5"
    res = prep(messy_folder, out, workers=1)
    assert not res.reused and out.exists()
    c = res.report["counts"]
    assert c["files"] == 18 and c["rejected_names"] == 2 and c["repaired_names"] == 1 and c["unreadable"] == 1
    assert c["cached"] == 15 and c["no_face"] == 1 and c["aligned"] == 14
    assert res.report["rejections_by_reason"] == {"missing-field": 1, "bad-extension": 1}
    assert any("30_0_0_20170116174525999" in u["reason"] for u in res.report["unreadable"])
    dup = [d for d in res.report["duplicates"] if len(d["files"]) == 3]
    assert dup and dup[0]["conflict"] and dup[0]["differs"] == ["age", "gender", "race"]
    assert json.loads(res.report_path.read_text())["counts"] == c
    assert res.samples_png.exists() and res.pairs_png.exists()
    from facekit.data.report import summary_lines

    text = "\n".join(summary_lines(res.report))
    assert "missing-field 1" in text and "no face   40_0_0_20170116174525998" in text
    assert "duplicate, age and gender and race differ" in text


    data = read_cache(out)
    assert data.images.shape == (15, 128, 128, 3) and data.images.dtype == np.uint8
    assert data.attrs["schema_version"] == SCHEMA_VERSION and data.attrs["channel_order"] == "RGB"
    assert data.attrs["options"]["align"] is True and data.attrs["template"]["size"] == 128
    assert data.landmarks.shape == (15, 5, 2) and data.aligned.sum() == 14
    row = list(data.filename).index("40_0_0_20170116174525998.jpg.chip.jpg")
    assert not data.aligned[row] and np.isnan(data.score[row]) and np.isnan(data.landmarks[row]).all()
    assert data.age[row] == 40 and data.gender[row] == 0
    assert len(set(data.content_sha256)) == 13  # three files share pixels
    with h5py.File(out) as f:  # plain h5py can read it
        assert f["filename"][0].decode().endswith(".jpg")


def test_reuse_force_and_drop(chip_folder: Path, tmp_path: Path):
    out = tmp_path / "c.h5"
    first = prep(chip_folder, out, workers=1)
    again = prep(chip_folder, out, workers=1)
    assert again.reused and again.report == first.report
    assert not prep(chip_folder, out, workers=1, force=True).reused
    noalign = prep(chip_folder, out, PrepOptions(align=False), workers=1)
    assert not noalign.reused and read_cache(out).aligned.sum() == 0


@pytest.mark.slow
def test_parallel_matches_serial(chip_folder: Path, tmp_path: Path):
    a = read_cache(prep(chip_folder, tmp_path / "a.h5", workers=1).cache)
    b = read_cache(prep(chip_folder, tmp_path / "b.h5", workers=2).cache)
    assert list(a.filename) == list(b.filename)
    np.testing.assert_array_equal(a.images, b.images)


def test_failure_leaves_no_half_written_cache(chip_folder: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "c.h5"
    prep(chip_folder, out, workers=1)
    before = out.read_bytes()
    calls = {"n": 0}
    real = cache_mod.CacheWriter.append

    def boom(self, **row):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-run
        real(self, **row)

    monkeypatch.setattr(cache_mod.CacheWriter, "append", boom)
    with pytest.raises(KeyboardInterrupt):
        prep(chip_folder, out, workers=1, force=True)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_old_schema_is_a_clear_error(chip_folder: Path, tmp_path: Path):
    out = tmp_path / "c.h5"
    prep(chip_folder, out, workers=1)
    with h5py.File(out, "a") as f:
        f.attrs["schema_version"] = 0
    with pytest.raises(CacheError, match="schema version 0.*--force"):
        prep(chip_folder, out, workers=1)
    with pytest.raises(CacheError, match="schema version 0"):
        read_cache(out)
    assert not prep(chip_folder, out, workers=1, force=True).reused


def test_folder_without_labels(tmp_path: Path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="no file with a UTKFace label"):
        prep(tmp_path, tmp_path / "c.h5", workers=1)
    with pytest.raises(FileNotFoundError):
        prep(tmp_path / "nope", tmp_path / "c.h5", workers=1)


def test_duplicates_name_the_labels_that_differ():
    from facekit.data.report import find_duplicates

    def row(name, age, gender, race, sha):
        return {"file": name, "age": age, "gender": gender, "race": race, "sha": sha}

    groups = find_duplicates([row("a", 30, 0, 1, "x"), row("b", 30, 0, 2, "x"),  # race only: not a conflict
                              row("c", 5, 1, 0, "y"), row("d", 6, 1, 0, "y"), row("e", 40, 0, 0, "z")])
    assert [(g["differs"], g["conflict"]) for g in groups] == [(["race"], False), (["age"], True)]


def _count_detections(monkeypatch) -> dict[str, int]:
    """Counts FaceFinder.find calls (workers=1 runs them in this process)."""
    from facekit.face.detect import FaceFinder

    calls = {"n": 0}
    real = FaceFinder.find

    def counted(self, rgb, thorough=False):
        calls["n"] += 1
        return real(self, rgb, thorough)

    monkeypatch.setattr(FaceFinder, "find", counted)
    return calls


def test_incremental_prep_detects_only_changed_files(chip_folder: Path, chip_sample: list[Path], tmp_path: Path,
                                                     monkeypatch):
    out = tmp_path / "c.h5"
    prep(chip_folder, out, workers=1)
    names = sorted(p.name for p in chip_folder.iterdir())
    (chip_folder / names[0]).unlink()  # removed
    shutil.copy(chip_sample[12], chip_folder / chip_sample[12].name)  # added
    shutil.copy(chip_sample[13], chip_folder / names[1])  # same name, other pixels: detected again
    os.utime(chip_folder / names[2])  # touched only: same pixels, reused
    calls = _count_detections(monkeypatch)
    res = prep(chip_folder, out, workers=1)
    assert not res.reused and res.reused_rows == 10 and calls["n"] == 2
    assert res.report["counts"]["reused_rows"] == 10
    fresh = read_cache(prep(chip_folder, tmp_path / "fresh.h5", workers=1, force=True).cache)
    got = read_cache(out)
    assert list(got.filename) == list(fresh.filename) and names[0] not in set(got.filename)
    for col in ("images", "age", "gender", "score", "landmarks", "aligned", "n_faces", "content_sha256"):
        np.testing.assert_array_equal(getattr(got, col), getattr(fresh, col), err_msg=col)
    with h5py.File(out) as a, h5py.File(tmp_path / "fresh.h5") as b:
        for col in ("file_size", "file_mtime_ns"):  # what the next prep trusts, as a fresh build records it
            np.testing.assert_array_equal(a[col][...], b[col][...], err_msg=col)


def _count_reads(monkeypatch) -> list[str]:
    from facekit.prep import workers as prep_mod  # where each image is read

    reads: list[str] = []
    real = prep_mod.read_rgb

    def counted(path):
        reads.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(prep_mod, "read_rgb", counted)
    return reads


def test_unchanged_files_are_not_even_read(chip_folder: Path, chip_sample: list[Path], tmp_path: Path,
                                          monkeypatch):
    from facekit.prep import pipeline as prep_mod

    monkeypatch.setattr(prep_mod, "N_PREVIEWS", 0)  # a preview needs the source image: none, so none is read
    out = tmp_path / "c.h5"
    prep(chip_folder, out, workers=1)
    names = sorted(p.name for p in chip_folder.iterdir())
    os.utime(chip_folder / names[0])  # touched: read and hashed, same pixels, reused
    shutil.copy(chip_sample[13], chip_folder / names[1])  # other pixels under the same name: detected
    reads, detections = _count_reads(monkeypatch), _count_detections(monkeypatch)
    copied = []
    real_read = cache_mod.StoredCrop.read.__func__
    monkeypatch.setattr(cache_mod.StoredCrop, "read",
                        classmethod(lambda cls, images, i: copied.append(i) or real_read(cls, images, i)))
    res = prep(chip_folder, out, workers=1)
    assert sorted(reads) == names[:2] and detections["n"] == 1
    assert (res.reused_rows, res.report["counts"]["unread_files"]) == (11, 10)
    assert len(copied) == 11  # reused crops are copied still compressed (their pixels: the test above)

    # A cache from before the size and time columns: every file is read and hashed once, none detected,
    # and the rewritten cache has the columns, so the next prep reads nothing.
    with h5py.File(out, "a") as f:
        del f["file_size"], f["file_mtime_ns"]
    shutil.copy(chip_sample[14], chip_folder / chip_sample[14].name)  # new: the fingerprint changes
    reads.clear()
    detections["n"] = 0
    res = prep(chip_folder, out, workers=1)
    assert len(reads) == 13 and detections["n"] == 1 and res.report["counts"]["unread_files"] == 0
    (chip_folder / chip_sample[14].name).unlink()
    reads.clear()
    res = prep(chip_folder, out, workers=1)
    assert reads == [] and res.report["counts"]["unread_files"] == 12 and len(read_cache(out)) == 12


def test_interrupted_prep_resumes_where_it_stopped(chip_folder: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "c.h5"
    real = cache_mod.CacheWriter.append
    calls = {"n": 0}

    def ctrl_c_at_six(self, **row):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        real(self, **row)

    monkeypatch.setattr(cache_mod.CacheWriter, "append", ctrl_c_at_six)
    with pytest.raises(KeyboardInterrupt):
        prep(chip_folder, out, workers=1)
    monkeypatch.setattr(cache_mod.CacheWriter, "append", real)
    assert not out.exists() and (tmp_path / "c.partial.h5").exists()  # no cache in place, the progress kept
    detections = _count_detections(monkeypatch)
    res = prep(chip_folder, out, workers=1)
    assert res.reused_rows == 5 and detections["n"] == 12 - 5
    assert sorted(p.name for p in tmp_path.glob("c.*")) == ["c.aligned.png", "c.h5", "c.report.json",
                                                            "c.samples.png"]  # no partial files left
    assert len(read_cache(out)) == 12


def test_streamed_cache_reads_what_memory_holds(chip_folder: Path, tmp_path: Path, monkeypatch):
    from facekit.data.cache import CacheImages, choose_mode, take

    out = prep(chip_folder, tmp_path / "c.h5", workers=1).cache
    mem, disk = read_cache(out), read_cache(out, in_memory=False)
    assert isinstance(disk.images, CacheImages) and disk.images.shape == mem.images.shape
    rows = np.array([7, 2, 9, 2 + 1])
    np.testing.assert_array_equal(disk.images[rows], mem.images[rows])
    np.testing.assert_array_equal(disk.images[3:6], mem.images[3:6])
    np.testing.assert_array_equal(disk.images[4], mem.images[4])
    view = take(disk.images, rows)
    assert isinstance(view, CacheImages) and len(view) == 4
    np.testing.assert_array_equal(view[np.array([3, 0])], mem.images[[3, 7]])
    np.testing.assert_array_equal(np.asarray(view), mem.images[rows])  # read whole, in the rows' order
    with pytest.raises(TypeError, match="indexed by rows only"):  # rows[..., ::-1] reversed the rows, not BGR
        view[..., ::-1]
    assert choose_mode(out, "auto")[0] == "memory" and choose_mode(out, "stream")[0] == "stream"
    monkeypatch.setattr(cache_mod, "available_memory", lambda: disk.images.nbytes)  # less than twice the crops
    mode, why = choose_mode(out)
    assert mode == "stream" and "memory stays flat" in why
    with pytest.raises(ValueError, match="cache mode"):
        choose_mode(out, "disk")

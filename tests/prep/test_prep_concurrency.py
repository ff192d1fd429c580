"""Two preps of one cache (issue 45, class 5): the second waits for the first, both succeed, the cache is whole."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import pytest

from facekit.data.cache import CacheError, read_attrs
from facekit.prep.reuse import lock_path
from facekit.utils.locking import file_lock
from tests.conftest import ROOT


def _folder(tmp_path: Path, chips: list[Path], n: int) -> Path:
    folder = tmp_path / "faces"
    folder.mkdir()
    for p in chips[:: len(chips) // n][:n]:
        shutil.copy(p, folder / p.name)
    return folder


def _prep(folder: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "facekit_cli.main", "prep", str(folder), "-o", str(out), "-w", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_second_prep_waits_for_the_first(tmp_path: Path, chips: list[Path]):
    folder, out = _folder(tmp_path, chips, 6), tmp_path / "cache" / "c.h5"
    with file_lock(lock_path(out)):  # this test plays the first prep
        proc = _prep(folder, out)
        said: list[str] = []
        reader = threading.Thread(target=lambda: said.extend(proc.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 240
        while not any("waiting for it to finish" in line for line in said) and time.monotonic() < deadline:
            assert proc.poll() is None, "".join(said)[-2000:]
            time.sleep(0.2)
        assert not out.exists() and not out.with_name("c.partial.h5").exists()  # nothing written while it waits
    proc.wait(timeout=300)
    reader.join(timeout=10)
    text = " ".join("".join(said).split())
    assert proc.returncode == 0, text[-2000:]
    assert "another prep (pid " in text and f"is writing {out}" in text, text[-1000:]
    with h5py.File(out) as f:
        assert len(f["images"]) == 6


@pytest.mark.slow
def test_two_preps_at_once_leave_one_whole_cache(tmp_path: Path, chips: list[Path]):
    folder, out = _folder(tmp_path, chips, 24), tmp_path / "cache" / "c.h5"
    first = _prep(folder, out)
    second = _prep(folder, out)
    results = [p.communicate(timeout=300) for p in (first, second)]
    for proc, (_, stderr) in zip((first, second), results):
        assert proc.returncode == 0, stderr[-2000:]
    with h5py.File(out) as f:
        assert len(f["images"]) == 24 and len(set(f["filename"][...])) == 24
    assert not out.with_name("c.partial.h5").exists() and not out.with_name("c.partial.prev.h5").exists()


def test_a_cache_a_writer_holds_open_is_not_called_broken(tmp_path: Path):
    path = tmp_path / "held.h5"
    code = ("import h5py, sys, time; f = h5py.File(sys.argv[1], 'w'); f.attrs['schema_version'] = 1; f.flush(); "
            "print('open', flush=True); time.sleep(60)")
    writer = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        try:
            read_attrs(path)
        except CacheError as exc:
            said = str(exc)
        else:
            pytest.skip("this HDF5 build does not lock files (HDF5_USE_FILE_LOCKING=FALSE?)")
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert "another process has this cache open for writing" in said and "--force" not in said, said

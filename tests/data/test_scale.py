"""A 100,000-image cache trains in flat memory (issue 12): streamed, memory does not grow with the cache."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from facekit.data.cache import CacheWriter, StoredCrop, read_attrs
from tests.conftest import MODELS

ROOT = Path(__file__).resolve().parents[2]


def synthetic_cache(src: Path, dest: Path, n: int) -> Path:
    """``n`` rows made by repeating the crops of a real cache (labels and attributes kept), written as prep does
    (the crops copied still compressed, as an incremental prep copies them: gzip-ing 100,000 crops again took most
    of this test's three minutes)."""
    import h5py

    attrs = read_attrs(src)
    with h5py.File(src, "r") as f:
        cols = {name: f[name][...] for name in f if name != "images"}
        assert StoredCrop.readable(f["images"])
        cols["images"] = [StoredCrop.read(f["images"], i) for i in range(len(f["images"]))]
        size = f["images"].shape[1]
        raw_attrs = dict(f.attrs)
    w = CacheWriter(dest, size, raw_attrs, block=2048)
    k = len(cols["age"])
    for i in range(n):
        j = i % k
        w.append(**{name: col[j] for name, col in cols.items() if name != "filename"},
                 filename=f"{i:06d}_{cols['filename'][j].decode()}")
    w.close()
    assert attrs["schema_version"] == read_attrs(dest)["schema_version"]
    return dest


def peak_rss_mb(cache: Path, runs: Path, name: str) -> tuple[float, dict]:
    cmd = [sys.executable, "-c", "from facekit_cli.main import main; main()", "train", "scratch", "--cache",
           str(cache), "--epochs", "1", "--steps", "3", "--batch-size", "16", "--full", "--cache-mode", "stream",
           "--eager", "--no-check", "--workers", "2", "--project", str(runs), "--name", name]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "FACEKIT_MODEL_DIR": str(MODELS)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    assert os.waitstatus_to_exitcode(status) == 0, err[-3000:]
    return usage.ru_maxrss / 1024, json.loads((runs / "scratch" / name / "metrics.json").read_text())


@pytest.mark.slow
def test_a_100k_cache_trains_in_the_memory_of_a_small_one(tiny_cache: Path, tmp_path: Path):
    t = time.perf_counter()
    big = synthetic_cache(tiny_cache, tmp_path / "big.h5", 100_000)
    assert time.perf_counter() - t < 600
    small_peak, small = peak_rss_mb(tiny_cache, tmp_path / "runs", "small")
    big_peak, metrics = peak_rss_mb(big, tmp_path / "runs", "big")
    assert metrics["cache_mode"] == "stream" and metrics["train_images"] == 100_000
    # In memory the crops alone would be 4.9 GB (twice that with the training copy); streamed, the 100,000-image
    # run may only add its label columns (about 150 bytes an image: 15 MB) and noise.
    assert big_peak - small_peak < 250, (small_peak, big_peak)
    assert np.isfinite(metrics["train_seconds"])

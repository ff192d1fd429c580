"""Prep's worker processes: a failed start or a dead worker ends the run with one clear error, never a hang;
SIGTERM leaves no temporary file (issue 9)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facekit.face.template import load_template
from facekit.prep.pipeline import prep
from facekit.prep.workers import PrepError, PrepOptions, map_files
from facekit.utils.modelfiles import ModelFileError
from tests.conftest import MODELS, TRAIN_VAL


def test_missing_model_files_are_one_error_before_any_worker(chip_folder: Path, tmp_path: Path):
    start = time.monotonic()
    with pytest.raises(ModelFileError, match="not found"):
        prep(chip_folder, tmp_path / "c.h5", workers=2, model_dir=str(tmp_path / "empty"))
    assert time.monotonic() - start < 30 and not list(tmp_path.glob("*.h5"))


@pytest.mark.slow
def test_a_worker_that_cannot_start_is_a_clear_error(chip_folder: Path):
    files = [str(p) for p in sorted(chip_folder.iterdir())]
    template = load_template()
    bad = PrepOptions()
    object.__setattr__(bad, "min_confidence", -1.0)  # past the parent's check: MediaPipe refuses it in the worker
    start = time.monotonic()
    with pytest.raises(PrepError, match="could not start.*ValueError"):
        list(map_files(files, bad, template, 2, str(MODELS)))
    assert time.monotonic() - start < 120
    assert len(list(map_files(files[:2], PrepOptions(), template, 2, str(MODELS)))) == 2


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def _start_prep(tmp_path: Path, **popen: object) -> subprocess.Popen:
    """`facekit prep` of 400 chips with 2 workers, writing under tmp_path/out, as a child process."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for p in sorted(TRAIN_VAL.iterdir())[:400]:
        os.symlink(p, folder / p.name)
    env = {**os.environ, "FACEKIT_MODEL_DIR": str(MODELS)}
    return subprocess.Popen([sys.executable, "-c", "from facekit_cli.main import main; main()", "prep", str(folder),
                             "-o", str(tmp_path / "out" / "c.h5"), "-w", "2"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **popen)


@pytest.mark.slow
def test_sigterm_leaves_no_cache_only_the_progress_to_resume_from(tmp_path: Path):
    proc = _start_prep(tmp_path)
    deadline = time.monotonic() + 120
    while not (tmp_path / "out" / "c.partial.h5").exists() and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prep ended before it could be stopped: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    left = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".c.h5.lock")  # the lock stays
    assert left in ([], ["c.partial.h5"])  # no cache, no temporary file; the rows done so far if any
    if left:
        import h5py

        with h5py.File(tmp_path / "out" / "c.partial.h5", "r") as f:  # closed properly: readable for the resume
            assert len(f["filename"]) == len(f["images"]) > 0


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("gap", [0.0, 0.05])
def test_ctrl_c_twice_cleans_up_without_a_traceback(tmp_path: Path, gap: float):
    # The second SIGINT once landed inside the pool's shutdown: "RuntimeError: release unlocked lock".
    proc = _start_prep(tmp_path, start_new_session=True)
    # Wait for the first progress line (10 %): the workers are running, so this is the cleanup path. (While the
    # workers are being started, SIGINT is ignored for a few milliseconds so that they are born ignoring it.)
    seen = b""
    while b"prep faces" not in seen:
        line = proc.stderr.readline()
        if not line:
            pytest.fail(f"prep ended before it could be stopped: {seen.decode()[-2000:]}")
        seen += line
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole process group, workers included
    time.sleep(gap)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    err = (seen + proc.stderr.read()).decode()
    assert "Traceback" not in err and "interrupted; the cache was not written" in err, err[-3000:]
    left = [p.name for p in (tmp_path / "out").iterdir() if p.name != ".c.h5.lock"]  # the lock stays, unheld
    assert left in ([], ["c.partial.h5"])  # no cache, no temporary file; the progress if any
    assert ("the same command resumes" in err) == bool(left)

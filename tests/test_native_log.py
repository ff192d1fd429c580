"""Native libraries' log lines stay out of the CLI's output; everything else gets through."""

import json
import os
import subprocess
import sys
from pathlib import Path

from facekit_cli.native_log import is_noise
from tests.conftest import MODELS, TRAIN_VAL

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795445076.314994    2193 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
    "will not be used.",
    "E0000 00:00:1795445084.906448    2193 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    "W0000 00:00:1795446010.678787    4640 face_landmarker_graph.cc:181] Sets FaceBlendshapesGraph acceleration",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    "compiler flags.",
    "W0000 00:00:1795445089.1 123 generator_dataset_op.cc:107] Error occurred when finalizing GeneratorDataset",
]
KEPT = [
    "error: cache/x.h5: no such cache; build it with `facekit prep DIR`",
    "E0000 00:00:1795445084.906448    2193 some_kernel.cc:52] real failure in a kernel",
    "Traceback (most recent call last):",
    "Fatal Python error: Segmentation fault",
]


def test_noise_patterns():
    assert all(is_noise(line) for line in NOISE)
    assert not any(is_noise(line) for line in KEPT)


def test_prep_prints_no_native_noise(tmp_path: Path):
    folder = tmp_path / "faces"
    folder.mkdir()
    for p in sorted(TRAIN_VAL.iterdir())[:4]:
        os.symlink(p, folder / p.name)
    cmd = [sys.executable, "-c", "from facekit_cli.main import main; main()", "prep", str(folder),
           "-o", str(tmp_path / "c.h5"), "-w", "2"]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "FACEKIT_NATIVE_LOGS")}
    env["FACEKIT_MODEL_DIR"] = str(MODELS)
    quiet = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert not [ln for ln in quiet.stderr.splitlines() if is_noise(ln)], quiet.stderr
    assert "prep faces 4/4" in quiet.stderr and "wrote" in quiet.stdout  # facekit's own lines get through
    loud = subprocess.run(cmd + ["--force"], env={**env, "FACEKIT_NATIVE_LOGS": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert loud.returncode == 0 and [ln for ln in loud.stderr.splitlines() if is_noise(ln)]  # the filter did it


def test_a_crash_message_survives_the_filter():
    code = ("from facekit_cli.native_log import filter_native_stderr; filter_native_stderr(); import ctypes, os; "
            "libc = ctypes.CDLL(None); libc.write(2, b'I0000 00:00:1.2 12 x.cc:1] noise\\n', 33); "
            "libc.write(2, b'F0000 fatal: the real reason\\n', 29); os.abort()")
    env = {k: v for k, v in os.environ.items() if k != "FACEKIT_NATIVE_LOGS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "F0000 fatal: the real reason" in out.stderr and "noise" not in out.stderr  # written by the reader


def test_predict_is_quiet_unless_verbose(tiny_models, chip_sample):
    cmd = [sys.executable, "-c", "from facekit_cli.main import main; main()"]
    args = ["predict", str(chip_sample[0]), "-m", str(tiny_models["B"]), "--jsonl"]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "FACEKIT_NATIVE_LOGS")}
    env["FACEKIT_MODEL_DIR"] = str(MODELS)
    quiet = subprocess.run(cmd + args, env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert not [ln for ln in quiet.stderr.splitlines() if is_noise(ln)], quiet.stderr
    assert quiet.stdout.count("\n") == 1 and "1 face in 1 of 1 image" in quiet.stderr  # records out, summary err
    loud = subprocess.run(cmd + ["--verbose", *args], env=env, capture_output=True, text=True, timeout=300)
    assert loud.returncode == 0 and [ln for ln in loud.stderr.splitlines() if is_noise(ln)], loud.stderr
    assert json.loads(loud.stdout)["status"] == "ok"  # log lines go to stderr, never into the records

"""Native libraries' log lines stay out of the CLI's output; everything else gets through."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_predict_is_quiet_unless_verbose(tiny_models, chip_sample, tmp_path):
    """An empty model cache, so the quiet run converts the file, which Keras and LiteRT print to descriptor 1:
    the records on stdout still parse (this stack's check of it; the install matrix checks the built stacks)."""
    cmd = [sys.executable, "-c", "from facekit_cli.main import main; main()"]
    args = ["predict", str(chip_sample[0]), "-m", str(tiny_models["B"]), "--jsonl"]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "FACEKIT_NATIVE_LOGS")}
    env.update(FACEKIT_MODEL_DIR=str(MODELS), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    quiet = subprocess.run(cmd + args, env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert not [ln for ln in quiet.stderr.splitlines() if is_noise(ln)], quiet.stderr
    assert quiet.stdout.count("\n") == 1 and "1 face in 1 of 1 image" in quiet.stderr  # records out, summary err
    assert json.loads(quiet.stdout)["status"] == "ok" and list((tmp_path / "xdg" / "facekit" / "litert").iterdir())
    loud = subprocess.run(cmd + ["--verbose", *args], env=env, capture_output=True, text=True, timeout=300)
    assert loud.returncode == 0 and [ln for ln in loud.stderr.splitlines() if is_noise(ln)], loud.stderr
    assert json.loads(loud.stdout)["status"] == "ok"  # log lines go to stderr, never into the records


@pytest.mark.parametrize("line", [
    # TensorFlow 2.16 and 2.20 write their own timestamped format, not absl's
    "2026-12-04 22:20:06.161385: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda drivers "
    "on your machine, GPU will not be used.",
    "2026-12-04 22:20:06.197519: I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "2026-12-04 22:20:07.512911: W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] TF-TRT Warning: Could not "
    "find TensorRT",
    "2026-12-04 22:20:08.001122: E external/local_xla/xla/stream_executor/cuda/cuda_driver.cc:152] failed call to "
    "cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
])
def test_tensorflows_own_log_format_is_noise(line):
    assert is_noise(line)


def test_a_real_error_in_tensorflows_format_is_kept():
    assert not is_noise("2026-12-04 22:20:08.001122: E tensorflow/core/framework/op_kernel.cc:1] OOM when "
                        "allocating tensor")


def test_library_chatter_never_reaches_standard_output(capfd, monkeypatch):
    """What Keras's LiteRT export prints (Python's print and descriptor 1 alike) stays off stdout."""
    import os

    from facekit.utils.streams import NATIVE_LOGS, quiet_stdout

    monkeypatch.delenv(NATIVE_LOGS, raising=False)
    print("record 1", flush=True)
    with quiet_stdout():
        print("Saved artifact at '/tmp/x'. The following endpoints are available:")
        os.write(1, b"* Endpoint 'serve'\n")
    print("record 2", flush=True)
    out, _ = capfd.readouterr()
    assert out == "record 1\nrecord 2\n"
    monkeypatch.setenv(NATIVE_LOGS, "1")  # debugging: the chatter goes to stderr instead
    with quiet_stdout():
        os.write(1, b"Saved artifact\n")
    out, err = capfd.readouterr()
    assert out == "" and "Saved artifact" in err


def test_litert_conversion_keeps_stdout_clean(capfd, tmp_path, monkeypatch):
    import os

    import keras

    from facekit.inference import litert

    class Chatty:
        def export(self, path, format, verbose=True):  # noqa: A002 - Keras's own argument name
            print("Saved artifact at", path)
            os.write(1, b"Output Type:\n")
            with open(path, "wb") as f:
                f.write(b"tflite")

    monkeypatch.setattr(litert, "cache_dir", lambda: tmp_path)
    if keras.backend.backend() != "tensorflow":
        pytest.skip("LiteRT conversion needs the TensorFlow backend")
    dest = litert.convert(Chatty(), "0" * 64)
    assert dest.read_bytes() == b"tflite"
    assert capfd.readouterr().out == ""


@pytest.mark.slow
def test_albumentations_never_asks_the_package_index():
    code = "import facekit.data.augment, os; print(os.environ.get('NO_ALBUMENTATIONS_UPDATE'))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"})
    assert res.returncode == 0 and res.stdout.strip() == "1", res.stderr

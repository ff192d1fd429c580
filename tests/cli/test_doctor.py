"""`facekit doctor` reports this machine as it is, and each problem with its fix; the pins it checks."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import facekit.doctor as doctor
from facekit.contract import OLDEST_KERAS, OLDEST_TRAINING_KERAS
from facekit_cli.main import app
from tests.conftest import ROOT

runner = CliRunner()


def _by_item(findings):
    return {f["item"] if isinstance(f, dict) else f.item: f for f in findings}


def test_doctor_reports_this_machine():
    from importlib import metadata

    res = runner.invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    found = _by_item(report["findings"])
    assert found["mediapipe"]["status"] == "ok" and metadata.version("mediapipe") in found["mediapipe"]["detail"]
    assert found["keras backend"]["detail"].startswith("tensorflow")
    assert found["face_landmarker.task"]["status"] == "ok" and "sha256 verified" in found["face_landmarker.task"][
        "detail"]
    cv = [d for d in metadata.distributions() if (d.metadata["Name"] or "").lower().startswith("opencv")]
    assert all(d.metadata["Name"].lower() in found["opencv"]["detail"] for d in cv)
    assert found["gpu"]["status"] in ("ok", "info")


def test_doctor_names_each_problem_and_its_fix(monkeypatch, tmp_path):
    real = doctor._installed
    monkeypatch.setattr(doctor, "_installed", lambda name: "0.10.21" if name == "mediapipe" else real(name))
    found = _by_item(doctor.requirement_findings())
    assert found["mediapipe"].status == "fail" and 'pip install "mediapipe>=0.10.30"' in found["mediapipe"].fix
    found = _by_item(doctor.model_file_findings(tmp_path))  # a named directory without the files
    assert found["face_landmarker.task"].status == "fail" and "not found" in found["face_landmarker.task"].detail
    res = runner.invoke(app, ["doctor", "--model-dir", str(tmp_path)])
    assert res.exit_code == 1

    def dist(name, version):
        return SimpleNamespace(metadata={"Name": name}, version=version)

    monkeypatch.setattr(doctor.metadata, "distributions", lambda: [dist("opencv-contrib-python", "4.11.0.86"),
                                                                   dist("opencv-python-headless", "4.12.0.88")])
    (cv,) = doctor.opencv_findings()
    assert cv.status == "warn" and "different versions" in cv.detail and "==4.12.0.88" in cv.fix


def test_jax_without_a_gpu_is_a_warning_with_its_fix():
    slow = doctor.backend_finding("jax", "3.15.1", None)
    assert slow.status == "warn" and "several times slower" in slow.detail and "KERAS_BACKEND=tensorflow" in slow.fix
    assert (ROOT / "benchmarks" / "results" / "train_speed-cpu-jax.md").is_file()  # the measurement it names
    assert doctor.backend_finding("jax", "3.15.1", "NVIDIA H100").status == "ok"
    assert doctor.backend_finding("tensorflow", "3.15.1", None).status == "ok"


def test_version_option():
    from facekit import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"facekit {__version__}"


def test_pins_that_keep_installs_working():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {d.split(">")[0].split("<")[0].split("=")[0].strip(): d for d in project["dependencies"]}
    assert deps["mediapipe"] == "mediapipe>=0.10.30"  # older ones pinned protobuf<5 (clashes with TF 2.20+)
    assert "<2.1" in deps["albumentations"]  # the MIT 2.0 line
    assert not [d for d in deps if d.startswith("opencv")]  # mediapipe and albumentations bring cv2
    assert deps["keras"] == f"keras>={OLDEST_TRAINING_KERAS}" and OLDEST_KERAS < OLDEST_TRAINING_KERAS
    assert deps["typer"] == "typer>=0.15.4"
    from packaging.specifiers import SpecifierSet

    assert "3.13.5" in SpecifierSet(project["requires-python"]) and "3.10.0" in SpecifierSet(
        project["requires-python"])
    assert Path(ROOT / "README.md").read_text().count("Python 3.10 to 3.13") >= 1


def test_a_cpu_without_avx512_is_told_how_long_cpu_training_takes():
    from facekit.utils.machine import Cpu

    slow = doctor.cpu_finding(Cpu("AMD EPYC", frozenset({"avx2", "fma"})), 2, None)
    assert slow.status == "info" and slow.detail.startswith("2 cores, AMD EPYC; no AVX-512") and "GPU" in slow.fix
    fast = doctor.cpu_finding(Cpu("AMD EPYC", frozenset({"avx2", "avx512f"})), 2, None)
    assert fast.status == "ok" and fast.detail == "2 cores, AMD EPYC, AVX-512"
    assert doctor.cpu_finding(Cpu("AMD EPYC", frozenset({"avx2"})), 16, "NVIDIA H100").status == "ok"  # GPU trains
    assert doctor.cpu_finding(Cpu("arm", None), 8, None).status == "ok"  # flags unknown: no claim

"""``facekit doctor``: what this machine has, what facekit needs of it, and how to fix each gap.

Version requirements are read from facekit's own installed metadata (the
dependencies in ``pyproject.toml``), so there is one list of pins and the
doctor cannot drift from it.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from facekit.utils.machine import Cpu, this_cpu

OK, INFO, WARN, FAIL = "ok", "info", "warn", "fail"


@dataclass
class Finding:
    item: str
    status: str  # ok, info (not a problem), warn (may cause trouble), fail (facekit cannot work as is)
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirement_findings(dist: str = "facekit") -> list[Finding]:
    """Python and every dependency against the ranges facekit declares."""
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    meta = metadata.metadata(dist)
    out = []
    python = platform.python_version()
    wanted = meta.get("Requires-Python") or ""
    if wanted and python not in SpecifierSet(wanted):
        out.append(Finding("python", FAIL, f"{python}, facekit supports {wanted}",
                           f"use a Python in {wanted} (Colab's 3.13 is supported)"))
    else:
        out.append(Finding("python", OK, f"{python} ({wanted or 'any'})"))
    for text in metadata.requires(dist) or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra (dev): not needed to run facekit
        have = _installed(req.name)
        if have is None:
            out.append(Finding(req.name, FAIL, f"not installed (facekit needs {req.specifier or 'it'})",
                               f'pip install "{req}"'))
        elif req.specifier and have not in req.specifier:
            out.append(Finding(req.name, FAIL, f"{have}, facekit needs {req.specifier}", f'pip install "{req}"'))
        else:
            out.append(Finding(req.name, OK, f"{have} ({req.specifier or 'any'})"))
    return out


def opencv_findings() -> list[Finding]:
    """Several OpenCV wheels can share the one ``cv2`` module (mediapipe and albumentations each bring one)."""
    dists = sorted({(d.metadata["Name"].lower(), d.version) for d in metadata.distributions()
                    if (d.metadata["Name"] or "").lower().startswith("opencv")})
    names = ", ".join(f"{n} {v}" for n, v in dists) or "none"
    try:
        import cv2

        loaded = f"cv2 {cv2.__version__} imports"
    except Exception as exc:  # a broken mix of wheels fails here
        return [Finding("opencv", FAIL, f"cv2 does not import ({exc}); installed: {names}",
                        "pip install --force-reinstall " + " ".join(f'"{n}=={dists[-1][1]}"' for n, _ in dists))]
    versions = {v for _, v in dists}
    if len(versions) > 1:
        return [Finding("opencv", WARN, f"{loaded}, but {len(dists)} OpenCV packages at different versions share "
                        f"it: {names}; which files win depends on install order",
                        "pip install --force-reinstall " + " ".join(f'"{n}=={max(versions)}"' for n, _ in dists))]
    note = " (one cv2 module, same version: fine)" if len(dists) > 1 else ""
    return [Finding("opencv", OK, f"{loaded}; installed: {names}{note}")]


def backend_findings() -> list[Finding]:
    import keras

    from facekit.engine.device import gpu_name

    backend = keras.backend.backend()
    gpu = gpu_name()
    out = [backend_finding(backend, keras.__version__, gpu)]
    out.append(Finding("gpu", OK if gpu else INFO, gpu or "none seen by the backend: training runs on the CPU "
                       "(hours per model; see README), predict and check are fine"))
    out.append(cpu_finding(this_cpu(), os.cpu_count(), gpu))
    out.append(predict_engine_finding(backend))
    return out


def cpu_finding(cpu: Cpu, cores: int | None, gpu: str | None) -> Finding:
    """The CPU, and where training will run on it, how long to expect against README's CPU times, which were
    measured on CPUs with AVX-512 (without it, two to three times as long: docs/results.md, Speed)."""
    detail = f"{cores or '?'} cores, {cpu.describe()}"
    if gpu is None and cpu.avx512 is False:
        return Finding("cpu", INFO, f"{detail}; no AVX-512: CPU training takes two to three times README's CPU "
                       "times (measured: docs/results.md, Speed)", "train on a GPU (Colab's will do)")
    return Finding("cpu", OK, detail)


def backend_finding(backend: str, version: str, gpu: str | None) -> Finding:
    """The backend, and a warning where it makes training slow: XLA's CPU code for JAX trained several times
    slower than TensorFlow's on a CPU (benchmarks/results/train_speed-cpu-jax.md against -tensorflow.md)."""
    detail = f"{backend} (Keras {version}); set KERAS_BACKEND to change it"
    if backend == "jax" and not gpu:
        return Finding("keras backend", WARN, f"{detail}; on a CPU, JAX trains several times slower than "
                       "TensorFlow (measured: benchmarks/results/train_speed-cpu-jax.md)",
                       "KERAS_BACKEND=tensorflow (the default) to train on this machine")
    return Finding("keras backend", OK, detail)


def predict_engine_finding(backend: str) -> Finding:
    """Whether predict can use its LiteRT engine here (twice as fast on a CPU) or falls back to Keras."""
    from facekit.inference.litert import EngineUnavailable, interpreter_class

    try:
        interpreter = interpreter_class()
    except EngineUnavailable as exc:
        return Finding("predict engine", INFO, f"keras: {exc}", "pip install ai-edge-litert")
    where = f"{interpreter.__module__}.{interpreter.__name__}"
    if backend != "tensorflow":
        return Finding("predict engine", INFO, f"keras for new models: Keras converts to LiteRT on the TensorFlow "
                       f"backend, not {backend} (models converted before still run with {where})",
                       "KERAS_BACKEND=tensorflow for predict")
    return Finding("predict engine", OK, f"litert ({where}); each model is converted once, on its first use")


def model_file_findings(directory: str | Path | None = None) -> list[Finding]:
    import os

    from facekit.model.backbones import DEFAULT_BACKBONE, get_backbone
    from facekit.utils.modelfiles import ENV_VAR, FACE_DETECTOR, FACE_LANDMARKER, ModelFileError, _verify, model_dir

    root = model_dir(directory)
    named = bool(directory) or bool(os.environ.get(ENV_VAR))
    out = []
    for spec in (FACE_DETECTOR, FACE_LANDMARKER):
        path = root / spec.relpath
        if path.is_file():
            try:
                _verify(path, spec)
                out.append(Finding(Path(spec.relpath).name, OK, f"{path} (sha256 verified)"))
            except ModelFileError as exc:
                out.append(Finding(Path(spec.relpath).name, FAIL, str(exc), f"delete {path} and run again"))
        elif named:
            out.append(Finding(Path(spec.relpath).name, FAIL, f"{path} not found in the model directory you named",
                               f"copy it there from {spec.url}, or unset {ENV_VAR} to download it"))
        else:
            out.append(Finding(Path(spec.relpath).name, INFO, f"not downloaded yet: prep and predict fetch it from "
                               f"{spec.url} on first use (needs internet)",
                               f"offline: copy it to DIR/{spec.relpath} and set {ENV_VAR}=DIR"))
    spec = get_backbone(DEFAULT_BACKBONE)
    if spec.weights_file:
        local = root / "keras" / spec.weights_file
        keras_cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / spec.weights_file
        found = next((p for p in (local, keras_cache) if p.is_file()), None)
        out.append(Finding(f"ImageNet weights ({DEFAULT_BACKBONE})", OK if found else INFO,
                           str(found) if found else "not downloaded yet: `facekit train finetune` fetches them "
                           "on first use (needs internet)",
                           "" if found else f"offline: put {spec.weights_file} in DIR/keras/ and set {ENV_VAR}=DIR"))
    return out


def keras_env_findings(python: tuple[int, int] | None = None) -> list[Finding]:
    """The Keras versions ``facekit check`` loads the hand-in files with, and which this Python can build."""
    from facekit.contract import CHECK_KERAS
    from facekit.contract.keras_envs import env_root, existing, unbuildable, uv_binary

    ready = [s for s in CHECK_KERAS if existing(s)]
    cannot = {s: why for s in CHECK_KERAS if s not in ready and (why := unbuildable(s, python))}
    missing = [s for s in CHECK_KERAS if s not in ready and s not in cannot]
    detail = f"ready in {env_root()}: {', '.join(ready) or 'none'}"
    if missing:
        how = "with uv, seconds each" if uv_binary() else "with pip, about 25 s each"
        detail += f"; built on first use ({how}; needs the package index): {', '.join(missing)}"
    findings = [Finding("hand-in check Keras versions", OK if not missing else INFO, detail,
                        "" if not missing else "offline: `facekit check --keras none` checks with this Keras only")]
    if cannot:
        findings.append(Finding("hand-in check on this Python", WARN, "; ".join(cannot.values()) + ": checks "
                                "report them NOT VERIFIED here (training still exits 0)",
                                "check the files once on Python 3.11+ (Colab's 3.13 will do): "
                                f"`facekit check A B --keras {','.join(cannot)}`"))
    return findings


def diagnose(model_directory: str | Path | None = None) -> dict[str, Any]:
    from facekit import __version__

    findings = [*requirement_findings(), *opencv_findings(), *backend_findings(),
                *model_file_findings(model_directory), *keras_env_findings()]
    return {"facekit": __version__, "python": sys.executable, "platform": platform.platform(),
            "findings": findings, "ok": all(f.status != FAIL for f in findings)}

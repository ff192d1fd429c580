"""Isolated Python environments with other Keras versions, to load a hand-in file where it will be judged.

Each is a virtual environment with ``keras==X.*`` and JAX on CPU (the smallest
backend to install; the lecturer's file does not care which backend loads it),
numpy and h5py, created on first use under facekit's cache directory (with uv
when it is installed, which fills one in seconds, else pip) and reused
afterwards. A Keras release that this Python cannot install (Keras 3.13 needs
Python 3.11+) is said to be so before anything is built. Creation goes to a temporary folder that is renamed
into place only when pip succeeded, under a file lock, so two processes never
share a half-built environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from facekit.utils.cachedir import user_cache
from facekit.utils.locking import file_lock

ENV_VAR = "FACEKIT_KERAS_ENVS"  # where the environments live; default ~/.cache/facekit/keras-envs
MARKER = "facekit-keras-env.json"  # written last: an environment without it is incomplete
PACKAGES = ("jax[cpu]", "numpy", "h5py")
PIP_TIMEOUT = 900.0
_OFFLINE = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution",
            "Failed to establish a new connection", "ProxyError", "dns error", "error sending request",
            "Could not connect", "failed to lookup address")
_NO_RELEASE = ("No matching distribution", "no version of", "Could not find a version that satisfies",
               "requirements are unsatisfiable")
_SPEC = re.compile(r"^3\.\d+(\.\d+)?$")


class KerasEnvError(Exception):
    """An environment for a Keras version could not be created (no network, no such version, pip failed)."""


class PythonTooOld(KerasEnvError):
    """This Python cannot install that Keras release at all: a fact about the machine, not about a file."""


@dataclass(frozen=True)
class KerasEnv:
    spec: str  # as asked: "3.8" (latest 3.8.x) or "3.13.2" (exactly)
    keras: str  # the version installed
    python: Path


def parse_specs(text: str) -> tuple[str, ...]:
    """'3.8,3.10, 3.13.2' -> ('3.8', '3.10', '3.13.2'); 'none' or '' -> (). Raises ValueError on anything else."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    specs = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in specs if not _SPEC.match(s)]
    if bad:
        raise ValueError(f"Keras versions must look like 3.8 or 3.13.2 (Keras 3 only), got {', '.join(bad)}")
    return specs


def requires_python(spec: str) -> tuple[int, int]:
    """The oldest Python a Keras release installs on (its Requires-Python on PyPI, read 2026-12: 3.5-3.11 >=3.9,
    3.12 >=3.10, 3.13 and later >=3.11)."""
    minor = int(spec.split(".")[1])
    return (3, 11) if minor >= 13 else (3, 10) if minor == 12 else (3, 9)


def unbuildable(spec: str, python: tuple[int, int] | None = None) -> str | None:
    """Why this Python cannot have a Keras ``spec`` environment ("needs Python 3.11+"), or None when it can."""
    need = requires_python(spec)
    have = python or (sys.version_info.major, sys.version_info.minor)
    if tuple(have) < need:
        return f"Keras {spec} needs Python {need[0]}.{need[1]}+ (this is Python {have[0]}.{have[1]})"
    return None


def buildable(specs: tuple[str, ...], python: tuple[int, int] | None = None) -> tuple[str, ...]:
    """The versions of ``specs`` this Python can build: what checks default to on this machine."""
    return tuple(s for s in specs if unbuildable(s, python) is None)


def uv_binary() -> str | None:
    """uv, when installed (the `uv` package or on PATH): it builds an environment in seconds, pip in a minute."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def requirement(spec: str) -> str:
    """'3.8' -> 'keras==3.8.*' (the newest patch release); '3.13.2' -> 'keras==3.13.2'."""
    return f"keras=={spec}.*" if spec.count(".") == 1 else f"keras=={spec}"


def env_root(root: str | Path | None = None) -> Path:
    if root:
        return Path(root)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return user_cache("keras-envs")


def _python_in(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _env_dir(spec: str, root: Path) -> Path:
    # Wheels differ per Python version, so an environment belongs to one interpreter version.
    return root / f"keras-{spec}-py{sys.version_info.major}{sys.version_info.minor}"


def existing(spec: str, root: str | Path | None = None) -> KerasEnv | None:
    """The ready environment for ``spec``, or None."""
    env_dir = _env_dir(spec, env_root(root))
    info = ready(env_dir)
    return KerasEnv(spec, info.get("keras", "?"), _python_in(env_dir)) if info else None


def _run(cmd: list[str], what: str, timeout: float) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise KerasEnvError(f"{what} took over {timeout:.0f} s") from exc
    except OSError as exc:
        raise KerasEnvError(f"{what} could not start: {exc}") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR:")][-1:] or [ln for ln in lines
                                                                           if "WARNING:" not in ln][-3:]
        if any(sign in ln for ln in lines for sign in _OFFLINE):
            raise KerasEnvError(f"could not be built: no package index (offline?); {what} failed")
        if any(sign in ln for ln in lines for sign in _NO_RELEASE):  # pip's and uv's words for it
            raise KerasEnvError(f"could not be built: the package index has no release for {what}")
        said = " ".join(errors)[-600:] or f"exit {proc.returncode}"
        raise KerasEnvError(f"could not be built: {what} failed: {said}")
    return proc.stdout


def ensure(spec: str, root: str | Path | None = None, timeout: float = PIP_TIMEOUT) -> KerasEnv:
    """The environment for ``spec``, created with pip if it does not exist yet (needs the package index)."""
    root = env_root(root)
    found = existing(spec, root)
    if found:
        return found
    why = unbuildable(spec)
    if why:
        raise PythonTooOld(why)
    env_dir = _env_dir(spec, root)
    build(env_dir, [requirement(spec), *PACKAGES], timeout=timeout, info={"spec": spec, "packages": PACKAGES})
    found = existing(spec, root)
    if found is None:
        raise KerasEnvError(f"the Keras {spec} environment in {env_dir} is incomplete after creation")
    return found


def ready(env_dir: Path) -> dict | None:
    """The marker of a complete environment in ``env_dir`` (what `build` wrote last), or None."""
    try:
        info = json.loads((env_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return info if _python_in(env_dir).exists() else None


def build(env_dir: Path, packages: Sequence[str], *, base_python: str | Path = sys.executable, lowest: bool = False,
          timeout: float = PIP_TIMEOUT, info: dict | None = None) -> Path:
    """A virtual environment of ``base_python`` in ``env_dir`` with ``packages``; returns its interpreter.

    One mechanism for the check's Keras environments and the tests' install matrix: built in a temporary folder
    under a file lock and renamed into place only when the install succeeded (the marker, with the installed
    Keras version and ``info``, written last), so no process ever uses a half-built environment; an existing
    complete one is reused. ``lowest`` installs the lowest release each requirement allows (uv's
    ``--resolution lowest-direct``; with pip, the newest patch release of each lower bound's line, pip having
    no such resolution).
    """
    if ready(env_dir):
        return _python_in(env_dir)
    root = env_dir.parent
    with file_lock(root / f".{env_dir.name}.lock"):
        if ready(env_dir):  # another process may have built it while this one waited
            return _python_in(env_dir)
        work = Path(tempfile.mkdtemp(prefix=f".{env_dir.name}.", dir=root))
        try:
            python = _python_in(work)
            uv = uv_binary()
            if uv:
                _run([uv, "venv", "--quiet", "--python", str(base_python), str(work)],
                     "creating a virtual environment", 300)
                _run([uv, "pip", "install", "--quiet", "--python", str(python),
                      *(["--resolution", "lowest-direct"] if lowest else []), *packages],
                     f"uv pip install {' '.join(packages)}", timeout)
            else:
                if lowest:
                    packages = lowest_lines(packages)
                if importlib.util.find_spec("pip") is not None:
                    # This environment's pip installs into the new one: no ensurepip needed (Colab's Python lacks
                    # it, so a plain `python -m venv` fails there), and no pip bootstrap per environment.
                    _run([str(base_python), "-m", "venv", "--clear", "--without-pip", str(work)],
                         "creating a virtual environment", 300)
                    pip = [sys.executable, "-m", "pip", "--python", str(python)]
                else:  # e.g. a uv-made environment without pip: the new one brings its own
                    _run([str(base_python), "-m", "venv", "--clear", str(work)], "creating a virtual environment",
                         300)
                    pip = [str(python), "-m", "pip"]
                _run([*pip, "install", "--quiet", "--disable-pip-version-check", *packages],
                     f"pip install {' '.join(packages)}", timeout)
            version = _run([str(python), "-c", "import importlib.metadata as m; print(m.version('keras'))"],
                           "reading the installed Keras version", 60).strip()
            (work / MARKER).write_text(json.dumps({**(info or {}), "keras": version, "requirements": list(packages)}))
            if env_dir.exists():
                shutil.rmtree(env_dir)  # a leftover without its marker
            os.replace(work, env_dir)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return _python_in(env_dir)


def lowest_lines(requirements: Sequence[str]) -> list[str]:
    """'tensorflow>=2.16' -> 'tensorflow~=2.16.0' (pip's nearest to uv's lowest-direct: the lower bound's line)."""
    out = []
    for text in requirements:
        req = Requirement(text)
        lower = [s.version for s in req.specifier if s.operator == ">="]
        if lower:
            parts = lower[0].split(".")
            pinned = ".".join(parts + ["0"] * (3 - len(parts))) if len(parts) < 3 else lower[0]
            rest = [str(s) for s in req.specifier if s.operator != ">="]
            extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
            marker = f"; {req.marker}" if req.marker else ""
            text = f"{req.name}{extras}{','.join([f'~={pinned}', *rest])}{marker}"
        out.append(text)
    return out

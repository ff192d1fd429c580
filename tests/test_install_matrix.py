"""README's smoke run on every stack README says facekit is tested with (issue 46).

Each stack is a fresh virtual environment built from the package index: ``lowest`` has every dependency at
pyproject.toml's lower bound (read from pyproject, not copied), ``colab`` Google Colab's Python, TensorFlow
and Keras. The stack this suite runs in is the third, ``newest``. In each, facekit is installed from this
checkout and runs README's smoke run as written (prep, both trainings, predict, evaluate, check) on 40
chips, then ``--version``; the built stacks then ``predict --json`` with a model cache that lacks Model A's
conversion, whose stdout must parse whatever the conversion prints (on ``newest``, test_native_log's
converting ``predict`` process checks it; the conversion is kept off stdout whatever the format: one
capture, facekit.utils.streams), and also run ``doctor``. The smoke run's six commands (and the built stacks'
``doctor``) run in one interpreter of the stack (Typer's runner; for ``newest``, the suite's own): a fresh
interpreter importing TensorFlow for each (about 15 s here) would test nothing more. What only a process
shows, the ``facekit`` entry point and a clean standard output at the file-descriptor level, is what
``--version`` and ``predict --json`` check, each a process of the stack's ``facekit``. The smoke run's
``check`` is the lecturer's fresh-interpreter read on the built stacks; ``newest`` probes in-process
(``probes_in_process``), since the suite's other tests read this stack's files in fresh interpreters.
Environments are built once with uv (pip where uv is missing) and kept under facekit's cache folder; a
stack whose Python this machine lacks is skipped with the reason. README's "Tested with" list is compared
with what each environment really installed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from typer.testing import CliRunner

from facekit.contract import keras_envs
from facekit.utils.cachedir import user_cache
from facekit.utils.modelfiles import sha256_file
from facekit_cli.main import app
from tests.conftest import MODELS, ROOT, TRAIN_VAL
from tests.test_docs import smoke_commands

README = ROOT / "README.md"
# The smoke run inside one interpreter of a built stack: each command through Typer's runner, stopping at
# the first that fails, with its output.
SMOKE_DRIVER = """
import json, shlex, sys, traceback
from typer.testing import CliRunner
from facekit_cli.main import app
for args in json.loads(sys.argv[1]):
    res = CliRunner().invoke(app, args)
    if res.exit_code != 0:
        print(f"facekit {shlex.join(args)}: exit {res.exit_code}\\n{res.output[-3000:]}")
        if res.exc_info and not isinstance(res.exception, SystemExit):
            traceback.print_exception(*res.exc_info, file=sys.stdout)
        sys.exit(1)
    print("@@DONE@@", shlex.join(args))
"""
ENV_VAR = "FACEKIT_MATRIX_ENVS"  # where the stacks' environments live; default ~/.cache/facekit/install-matrix


@dataclass(frozen=True)
class Stack:
    name: str
    python: str | None  # "3.10"; None: the interpreter running the suite
    pins: tuple[str, ...] = ()  # requirements beside pyproject's own
    lowest: bool = False  # every dependency at its lower bound


STACKS = (Stack("lowest", "3.10", lowest=True),
          Stack("colab", "3.13", pins=("tensorflow==2.20.*", "keras==3.13.2")),
          Stack("newest", None))


def dependencies() -> list[str]:
    """pyproject.toml's dependencies, as written there (and as doctor reads them: the installed metadata)."""
    return [r.split(";")[0].strip() for r in metadata.requires("facekit") or [] if "extra ==" not in r]


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` on this machine: on PATH, or one pyenv installed (not on PATH unless
    selected). Never downloaded: a Python build is not a package the index serves."""
    candidates = [shutil.which(f"python{version}"),
                  *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))]
    for path in filter(None, candidates):
        try:
            out = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return path
    return None


def readme_stacks() -> dict[str, dict[str, str]]:
    """README's "Tested with" list: {stack: {"python": "3.10", package: version, ...}}."""
    section = README.read_text().split("Tested with", 1)[1].split("\n\n", 2)[1]  # the list after the lead-in
    return {name: dict(re.findall(r"\b([a-z][a-z0-9_-]*) (\d+\.\d+(?:\.\d+)?)\b", rest.lower()))
            for name, rest in re.findall(r"^- \*\*(\w+)\*\*: (.+)$", section, flags=re.M)}


def environment(stack: Stack) -> tuple[Path, float]:
    """The stack's interpreter with facekit from this checkout installed, and the seconds building took."""
    python = find_python(stack.python)
    if python is None:
        pytest.skip(f"stack {stack.name}: this machine has no Python {stack.python} (looked on PATH and in "
                    f"~/.pyenv/versions); nothing was tested for it")
    requirements = [*dependencies(), *stack.pins]
    key = hashlib.sha256(json.dumps([stack.python, stack.lowest, requirements]).encode()).hexdigest()[:10]
    root = Path(os.environ.get(ENV_VAR) or user_cache("install-matrix"))
    env_dir = root / f"{stack.name}-py{stack.python.replace('.', '')}-{key}"
    start = time.perf_counter()
    interpreter = keras_envs.build(env_dir, requirements, base_python=python, lowest=stack.lowest,
                                   info={"stack": stack.name}, timeout=1800)
    uv = keras_envs.uv_binary()
    install = ([uv, "pip", "install", "--python", str(interpreter)] if uv
               else [sys.executable, "-m", "pip", "--python", str(interpreter), "install"])
    # This checkout, as a user installs it (a wheel built from pyproject.toml), without touching the pins.
    done = subprocess.run([*install, "--quiet", "--no-deps", "--reinstall", str(ROOT)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return interpreter, time.perf_counter() - start


def installed(python: str | Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys; v = {d.metadata['Name'].lower(): d.version "
            "for d in m.distributions()}; v['python'] = '%d.%d' % sys.version_info[:2]; print(json.dumps(v))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("stack", STACKS, ids=lambda s: s.name)
def test_readme_smoke_run_on_each_tested_stack(stack: Stack, tmp_path: Path, monkeypatch, request):
    """README's smoke run as written, on 40 chips instead of 5,000, then the machine-readable outputs."""
    if stack.python is None:
        python, built = Path(sys.executable), 0.0
    else:
        python, built = environment(stack)
        print(f"stack {stack.name}: environment ready in {built:.0f} s")
    have = installed(python)
    claimed = readme_stacks()[stack.name]
    assert {k: have.get(k) for k in claimed} == claimed, f"README's Tested with list for {stack.name}"
    if stack.lowest:  # every lower bound really was what got installed
        for req in map(Requirement, dependencies()):
            lower = [spec.version for spec in req.specifier if spec.operator == ">="]
            assert lower and have[req.name.lower()].startswith(lower[0]), (req.name, have[req.name.lower()], req)

    data = tmp_path / "train_val"
    data.mkdir()
    chips = sorted(TRAIN_VAL.iterdir())[::125][:40]
    for p in chips:
        shutil.copy(p, data / p.name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(FACEKIT_MODEL_DIR=str(MODELS), XDG_CACHE_HOME=str(tmp_path / "xdg"), PATH=os.pathsep.join(
        [str(python.parent), env.get("PATH", "")]))
    facekit = [str(python), "-m", "facekit_cli.main"] if stack.python is None else [str(python.parent / "facekit")]

    def run(*args: str, cache: str = "xdg") -> subprocess.CompletedProcess:
        res = subprocess.run([*facekit, *args], cwd=tmp_path, env={**env, "XDG_CACHE_HOME": str(tmp_path / cache)},
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"[{stack.name}] facekit {shlex.join(args)}\n{res.stdout[-2000:]}\n" \
                                    f"{res.stderr[-3000:]}"
        return res

    commands = smoke_commands()
    assert [c[1] for c in commands] == ["prep", "train", "train", "predict", "evaluate", "check"]
    smoke = []
    for cmd in commands:
        args = [str(data / Path(a).name) if a.startswith("../shared/data/train_val/") else
                str(data) if a == "../shared/data/train_val" else a for a in cmd[1:]]
        if args[0] == "predict":  # the README's chip is one of the 5,000; use one of the 40
            args = ["predict", str(data / chips[0].name), *args[2:]]
        smoke.append(args)
    if stack.python is None:  # the newest stack is this interpreter, whose fresh-interpreter read test_train,
        request.getfixturevalue("probes_in_process")  # test_check and test_keras_versions test: probe in-process
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("FACEKIT_MODEL_DIR", str(MODELS))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        for args in smoke:
            res = CliRunner().invoke(app, args)
            assert res.exit_code == 0, f"[{stack.name}] facekit {shlex.join(args)}\n{res.output[-3000:]}"
    else:  # the suite's own stack runs doctor elsewhere; here it joins the smoke run's interpreter
        smoke += [["doctor"]]
        done = subprocess.run([str(python), "-c", SMOKE_DRIVER, json.dumps(smoke)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"[{stack.name}] {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert done.stdout.count("@@DONE@@") == len(smoke), done.stdout[-3000:]

    assert run("--version").stdout.strip().endswith(have["facekit"])
    if stack.python is None:  # test_native_log runs this stack's converting predict as a process
        return
    # The smoke run's predict converted both files to LiteRT (where this stack's Keras converts at all). This
    # process starts from a cache that holds B's conversion only: it converts A, which Keras and LiteRT log to
    # descriptor 1, and reads B's from the cache, both in one process whose records must still parse.
    smoke_cache, json_cache = (tmp_path / cache / "facekit" / "litert" for cache in ("xdg", "fresh-json"))
    converted = {p.name for p in smoke_cache.glob("*.tflite")}
    if converted:
        b_key = sha256_file(tmp_path / "runs" / "finetune" / "smoke" / "age_gender_B.keras")  # the cache's key
        json_cache.mkdir(parents=True)
        shutil.copy(smoke_cache / f"{b_key}.tflite", json_cache)
    document = json.loads(run("predict", str(data / chips[1].name), "-m", "A", "-m", "B", "--json",
                              cache="fresh-json").stdout)
    assert sorted(r["model"] for r in document["records"]) == ["A", "B"], document
    assert {p.name for p in json_cache.glob("*.tflite")} == converted  # A converted here, B read from the cache
    assert all(r["status"] == "ok" and r["age"] > 0 for r in document["records"]), document

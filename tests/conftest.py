"""Shared fixtures: the offline model files and a few real chips from ../shared."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from facekit.utils.locking import file_lock

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TRAIN_VAL = SHARED / "data" / "train_val"
MODELS = SHARED / "models"

# Point facekit at the offline copies (no network here); a developer can override it.
os.environ.setdefault("FACEKIT_MODEL_DIR", str(MODELS))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Every training that starts, in this process or a child, appends a line here; the summary counts them.
TRAIN_LOG = Path(os.environ.setdefault("FACEKIT_TRAIN_LOG", str(Path(tempfile.gettempdir())
                                                                / f"facekit-train-log-{os.getpid()}.jsonl")))


def pytest_sessionstart(session: pytest.Session) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # workers (pytest -n) share the controller's log
        TRAIN_LOG.unlink(missing_ok=True)


# The longest tests, longest first (durations from CI's --durations list), each started first on its own
# pytest-xdist worker so that the workers end together instead of one finishing a 3-minute test alone.
FIRST = ("test_readme_smoke_run_on_each_tested_stack[colab]", "test_keras_versions.py::test_fresh_exports",
         "test_readme_smoke_run_on_each_tested_stack[lowest]", "test_jax_backend_trains_and_loads",
         "test_two_devices_start_where_one_does[tensorflow]", "test_readme_smoke_run_on_each_tested_stack[newest]",
         "test_members_train_merge_score_and_resume", "test_snapshot_run_hands_in_the_merge_of_its_cycles",
         "test_notebook.py", "test_a_100k_cache_trains", "test_two_devices_start_where_one_does[jax]",
         "test_predict_is_quiet_unless_verbose", "test_train_export_and_check[scratch-plain]",
         "test_fit_speed_times_a_real_training_run", "test_train_and_check_through_the_cli")


def lanes(items: list, workers: int, first: tuple[str, ...] = FIRST) -> list:
    """``items`` reordered so that the ``first`` tests open the chunks --dist worksteal deals out.

    Worksteal gives worker i the next ``pending // (workers - i)`` tests in collection order and steals
    from the end of a queue, so a test placed at the front of a chunk stays there: the longest tests are
    dealt round-robin, one lane per worker, instead of queueing on the first worker one after another.
    """
    rank = {id(it): next((i for i, key in enumerate(first) if key in it.nodeid), len(first)) for it in items}
    heavy = sorted((it for it in items if rank[id(it)] < len(first)), key=lambda it: rank[id(it)])
    rest = iter([it for it in items if rank[id(it)] == len(first)])
    out, remaining = [], len(items)
    for w in range(workers):
        size = remaining // (workers - w)
        remaining -= size
        lane = heavy[w::workers]
        out += lane + [it for _ in range(max(0, size - len(lane))) if (it := next(rest, None)) is not None]
    return out + list(rest)  # a selection of mostly long tests can use up the others early


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    # Every worker collects, and each must produce the same order: workercount is the same for all.
    items[:] = lanes(items, getattr(config, "workerinput", {}).get("workercount", 1))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    runs = TRAIN_LOG.read_text().splitlines() if TRAIN_LOG.exists() else []
    resumed = sum('"resumed": true' in line for line in runs)
    terminalreporter.write_line(f"facekit: {len(runs)} training runs started ({resumed} of them resumes), "
                                f"logged in {TRAIN_LOG}")


@dataclass
class Ran:
    """A command's outcome, as a process's would read."""
    returncode: int
    stdout: str
    stderr: str


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Ran:
    """``facekit ARGS`` through Typer's runner, in this process, from ``cwd``: for tests whose subject is
    decided in facekit's own code (a message, an exit code, what happens to a file), where a fresh
    interpreter importing TensorFlow for each command would test nothing more. An exception that escapes
    the command is its traceback in ``stderr``, as a process would print it."""
    from typer.testing import CliRunner

    from facekit_cli.main import app

    here = os.getcwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(app, args, env={"COLUMNS": "240", "FACEKIT_MODEL_DIR": str(MODELS), **(env or {})})
    finally:
        os.chdir(here)
    stderr = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*res.exc_info))
    return Ran(res.exit_code, res.stdout, stderr)


def cpu_queue_series() -> list[list[str]]:
    """The arguments of each ``series`` line of benchmarks/cpu/round3.sh (the accuracy series it queues), read
    once for every test that holds the queue to the levers and to the GPU script."""
    script = (ROOT / "benchmarks" / "cpu" / "round3.sh").read_text()
    return [shlex.split(line)[1:] for line in script.splitlines() if line.startswith("series ")]


def recording_commands(where: Path, answers: dict[str, str]) -> tuple[dict[str, str], Callable[[], list[str]]]:
    """Commands that write down each call (``name args``, one line in ``where/calls``) instead of running it,
    first on PATH in the environment returned with a reader of those lines: a shell script (a GPU plan, the
    CPU queue) is judged by what it would run, without training. ``answers`` maps each command's name to
    shell lines it runs first, to answer for real the calls the script needs an answer from."""
    bin_dir, calls = where / "bin", where / "calls"
    bin_dir.mkdir(parents=True)
    for name, answer in answers.items():
        (bin_dir / name).write_text(f'#!/bin/sh\n{answer}\nprintf "{name} %s\\n" "$*" >> {calls}\n')
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"} | {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return env, lambda: calls.read_text().splitlines() if calls.exists() else []


@pytest.fixture()
def probes_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every contract probe of this environment's Keras (``facekit check``, a training run's end-of-run check)
    runs in the test's own process, as ``check_model(..., isolated=False)`` does; other Keras versions keep
    their own interpreters. For tests whose subject is the command (its exit code, JSON, names), not the
    lecturer's fresh interpreter, which a fresh interpreter importing TensorFlow (about 13 s) would only repeat:
    test_train, test_check, test_keras_versions and the install matrix's built stacks test that one."""
    from facekit.inference import check

    real = check.run_probes

    def in_process(models, inputs=None, timeout=600, backend=None, python=None, isolated=True):
        return real(models, inputs, timeout, backend, python, isolated=False)

    monkeypatch.setattr(check, "run_probes", in_process)


def _chips() -> list[Path]:
    if not TRAIN_VAL.is_dir():
        raise RuntimeError(f"{TRAIN_VAL} is missing: the tests need ../shared beside the checkout")
    return sorted(TRAIN_VAL.iterdir())


@pytest.fixture(scope="session")
def chips() -> list[Path]:
    """All 5,000 real chip paths, sorted by name."""
    return _chips()


@pytest.fixture(scope="session")
def chip_sample(chips: list[Path]) -> list[Path]:
    """A fixed, spread-out sample of 24 chips (every 208th name)."""
    return chips[:: len(chips) // 24][:24]


@pytest.fixture()
def chip_folder(tmp_path: Path, chip_sample: list[Path]) -> Path:
    """A temporary folder with 12 real chips, copied (prep must not touch ../shared)."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for p in chip_sample[:12]:
        shutil.copy(p, folder / p.name)
    return folder


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that every pytest-xdist worker of this session sees (without xdist: this session's own)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"


def built_once(shared: Path, name: str, build: Callable[[Path], dict[str, str]]) -> dict[str, str]:
    """``build(folder)`` run by the first worker that asks, under a lock; the others wait and reuse its result
    (paths as strings). Expensive session fixtures (the tiny cache, the trained runs) are made once this way
    instead of once per worker."""
    folder, done = shared / name, shared / f"{name}.json"
    with file_lock(shared / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what an attempt that failed left behind
            folder.mkdir(parents=True)
            done.write_text(json.dumps(build(folder)))
        return json.loads(done.read_text())


@pytest.fixture(scope="session")
def tiny_cache(shared_tmp: Path, chip_sample: list[Path]) -> Path:
    """A prep cache of 24 real chips, built once per test session."""
    from facekit.prep.pipeline import prep

    def build(root: Path) -> dict[str, str]:
        folder = root / "faces"
        folder.mkdir()
        for p in chip_sample:
            shutil.copy(p, folder / p.name)
        return {"cache": str(prep(folder, root / "tiny.h5", workers=1).cache)}

    return Path(built_once(shared_tmp, "tiny", build)["cache"])


def quick_config(task: str, cache: Path, project: Path, **kw):
    """A training configuration that runs in seconds on a CPU: 2 epochs of 2 batches of 8, run eagerly (tracing
    Model B's train step alone takes about 30 s on CI's CPU). The session's ``trained_runs`` train compiled.
    Model B has the default backbone, the one users train: MobileNet 0.75 has half the layers of MobileNetV2
    0.35, which is what tracing and op-by-op steps cost (measured: 30 s of CPU against 47 s compiled, 12 s
    against 16 s eagerly)."""
    from facekit.engine.recipe import TrainConfig

    base = dict(cache=str(cache), epochs=2, batch_size=8, steps_per_epoch=2, workers=1, project=str(project),
                weights="none", widths=(16, 16, 16, 16, 16), hidden=16, eager=True)
    # Not 8 in the first stage: TensorFlow 2.21's oneDNN kernels crash (segfault, double free) training the
    # residual trunk with an 8-filter stem on AVX-512 CPUs; 16 and the default widths train (TF_ENABLE_ONEDNN_OPTS=0
    # avoids it too).
    base.update(kw)
    return TrainConfig.for_task(task, **base)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained but complete exported models in a runs folder: A, B and B with swapped outputs."""
    from facekit.model.backbones import DEFAULT_BACKBONE, get_backbone
    from facekit.model.export import save_hand_in
    from facekit.model.models import build_finetune, build_scratch, export_from_train

    runs = tmp_path_factory.mktemp("runs")
    a = build_scratch(widths=(8, 8, 16, 16, 16), hidden=16)
    b = build_finetune(get_backbone(DEFAULT_BACKBONE), None)  # the backbone users get, as quick_config's
    paths = {
        "A": runs / "scratch" / "exp" / "age_gender_A.keras",
        "B": runs / "finetune" / "exp" / "age_gender_B.keras",
        "B_swapped": runs / "swapped" / "age_gender_B_swapped.keras",
    }
    save_hand_in(a.export, paths["A"])
    save_hand_in(b.export, paths["B"])
    save_hand_in(export_from_train(b.train, "gender,age"), paths["B_swapped"])
    return {**paths, "runs": runs}


def contract_failures(report) -> list[tuple[str, str]]:
    """Failed checks except "the same answer for every face": models trained a few steps in tests answer the same
    for everyone, which `facekit check` rightly fails; every other rule must hold."""
    return [(c.name, c.detail) for c in report.checks
            if c.ok is False and "the same answer for every face" not in c.detail]


@pytest.fixture(scope="session")
def trained_runs(tiny_cache: Path, shared_tmp: Path) -> dict[str, Path]:
    """Tiny Model A (3 epochs) and Model B (2 epochs) run folders, trained once per session for every test
    that only reads a trained run. A test that changes a run takes ``trained_copy`` instead."""
    from facekit.engine.train import train

    def build(project: Path) -> dict[str, str]:
        return {"A": str(train(quick_config("scratch", tiny_cache, project, epochs=3, name="a", eager=False)).run_dir),
                "B": str(train(quick_config("finetune", tiny_cache, project, name="b", eager=False)).run_dir)}

    return {k: Path(v) for k, v in built_once(shared_tmp, "trained", build).items()}


@pytest.fixture()
def trained_copy(trained_runs: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """This test's own copies of the session's trained run folders."""
    return {k: Path(shutil.copytree(v, tmp_path / "runs" / v.parent.name / v.name)) for k, v in trained_runs.items()}


def _two_heads(x, inp, names=("age", "gender")):
    import keras
    from keras import layers

    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, strides=8)(x))
    return keras.Model(inp, [layers.Dense(1, name=names[0])(x),
                             layers.Dense(1, activation="sigmoid", name=names[1])(x)])


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files facekit did not write: a two-output plain model, a one-output one, one with a Lambda, a folder."""
    import keras
    from keras import layers

    root = tmp_path_factory.mktemp("foreign")
    inp = keras.Input((128, 128, 3))
    files = {"plain": root / "plain_B.keras", "single": root / "single.keras", "lambda": root / "lambda_B.keras",
             "zip": root / "renamed.keras", "run": root / "runs" / "finetune" / "exp"}
    _two_heads(inp, inp).save(files["plain"])
    keras.Sequential([keras.Input((128, 128, 3)), layers.GlobalAveragePooling2D(), layers.Dense(1)]).save(
        files["single"])
    _two_heads(layers.Lambda(lambda t: t * 2.0)(inp), inp).save(files["lambda"])
    with zipfile.ZipFile(files["zip"], "w") as z:
        z.writestr("notes.txt", "a zip, but no Keras file")
    files["run"].mkdir(parents=True)
    (files["run"] / "age_gender_B.keras").write_bytes(files["plain"].read_bytes())
    return files

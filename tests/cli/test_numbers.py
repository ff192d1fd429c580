"""Numbers out of range (issue 45, class 3): refused while the command line is parsed, with exit 2 and the
option named, before TensorFlow or Keras is imported; every bounded number refuses NaN and infinities."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facekit_cli.main import app
from tests.conftest import ROOT, run_cli

# Numbers with no range: any integer is a seed.
UNBOUNDED = {("evaluate", "seed"), ("train", "seed"), ("train", "init_seed")}

CASES = [
    (["train", "scratch", "--lr", "nan"], "--lr", "finite"),
    (["train", "finetune", "--mix-alpha", "-1"], "--mix-alpha", "greater than 0"),
    (["train", "scratch", "--epochs", "0"], "--epochs", "at least 1"),
    (["train", "scratch", "--limit", "0"], "--limit", "at least 1"),
    (["train", "scratch", "--workers", "-1"], "--workers", "at least 1"),
    (["evaluate", "A", "--worst", "-3"], "--worst", "at least 0"),
    (["evaluate", "A", "--split", "val", "--val-split", "nan"], "--val-split", "finite"),
    (["template", "{tmp}", "--limit", "-5"], "--limit", "at least 1"),
    (["prep", "{tmp}", "--min-confidence", "inf"], "--min-confidence", "finite"),
    (["prep", "{tmp}", "--min-confidence", "-1"], "--min-confidence", "at least 0"),
    (["prep", "{tmp}", "-w", "0"], "--workers", "at least 1"),
    (["check", "x_A.keras", "--samples", "0"], "--samples", "at least 1"),
    (["predict", "x.jpg", "--batch-size", "0"], "--batch-size", "at least 1"),
    (["predict", "x.jpg", "--max-faces", "-1"], "--max-faces", "at least 1"),
    (["predict", "x.jpg", "--max-faces", "0"], "--max-faces", "at least 1"),
    (["predict", "x.mp4", "--fps", "0"], "--fps", "greater than 0"),
]


def _numeric_options() -> list[tuple[str, str, typing.Any, set, str]]:
    """(command, parameter, its typer OptionInfo, its number types, its flag) for every int or float option."""
    found = []
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        for param in inspect.signature(command.callback, eval_str=True).parameters.values():
            args = typing.get_args(param.annotation)
            if not args:
                continue
            types = set(typing.get_args(args[0])) or {args[0]}
            if types & {int, float} and not types & {bool}:
                info = args[1]
                flag = next((d for d in info.param_decls if d.startswith("--") and not d.startswith("--no-")),
                            "--" + param.name.replace("_", "-")).split("/")[0]
                found.append((name, param.name, info, types, flag))
    return found


def test_every_number_has_a_range_checked_while_parsing():
    options = _numeric_options()
    assert {"worst", "limit", "samples", "batch_size", "lr", "epochs"} <= {p for _, p, *_ in options}
    unchecked = [(c, p) for c, p, info, *_ in options if info.callback is None and (c, p) not in UNBOUNDED]
    assert not unchecked, f"numeric options with no range check: {unchecked}"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_no_bounded_float_takes_nan_or_infinity(value: str, tmp_path: Path):
    """Every float option of every command, fed NaN or an infinity: exit 2, the option named."""
    runner = CliRunner()
    floats = [(c, flag) for c, _, info, types, flag in _numeric_options() if info.callback is not None
              and float in types]
    assert len(floats) >= 8
    for command, flag in floats:
        args = [command, *(["scratch"] if command == "train" else [str(tmp_path)]), flag, value]
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and flag in res.output and "finite" in res.output, (args, res.output)


@pytest.mark.slow
def test_out_of_range_numbers_are_refused_before_tensorflow_is_imported(tmp_path: Path):
    """Each case a fresh process in which importing TensorFlow or Keras fails loudly: the refusal must come
    first, with exit 2 and the option named."""
    blocked = tmp_path / "blocked"
    for module in ("tensorflow", "keras", "jax"):
        (blocked / module).mkdir(parents=True)
        (blocked / module / "__init__.py").write_text(f"raise ImportError('{module} was imported before the option "
                                                      "was refused')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked), str(ROOT)])}

    def run(case):
        args = [a.replace("{tmp}", str(tmp_path)) for a in case[0]]
        return subprocess.run([sys.executable, "-m", "facekit_cli.main", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, CASES))
    for (args, flag, words), res in zip(CASES, results):
        said = " ".join((res.stdout + res.stderr).split())
        assert res.returncode == 2, (args, res.returncode, said[-1500:])
        assert flag in said and words in said and "was imported" not in said, (args, said[-1500:])
        assert "Traceback" not in said, (args, said[-1500:])


@pytest.mark.slow
def test_a_run_whose_loss_becomes_nan_says_so_and_names_no_model(tiny_cache: Path, tmp_path: Path):
    """A learning rate of 1e12 is in range but blows the loss up to NaN: the run stops there, exits 1 with a
    message naming the run folder and the batch, and prints no path of a model file it did not write."""
    args = ["train", "scratch", "--cache", str(tiny_cache), "--lr", "1e12", "--epochs", "3", "--steps", "2",
            "--batch-size", "8", "--eager", "--check-keras", "none", "--project", str(tmp_path), "--name", "nan"]
    res = run_cli([*args, "--json"], tmp_path)  # what is said and the exit code are facekit's own
    said = " ".join(res.stderr.split())
    assert res.returncode == 1, (res.returncode, said[-2000:])
    assert res.stdout.strip() == "" and "age_gender_A.keras" not in said, (res.stdout, said[-2000:])
    assert "the training loss became nan" in said and "no model file was written" in said and "--lr" in said, said
    run = tmp_path / "scratch" / "nan"
    assert str(run) in said and not (run / "age_gender_A.keras").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] is None and metrics["diverged"]["loss"] != metrics["diverged"]["loss"]  # NaN

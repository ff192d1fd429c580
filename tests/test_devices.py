"""Training over several devices (issue 12): the host split into two JAX devices, as CI can do it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facekit.distribute import parse_devices, plan

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
from pathlib import Path
from tests.conftest import quick_config
from facekit.compat import read_config
from facekit.runs import read_history
from facekit.train import train

cache, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = {n: train(quick_config("scratch", cache, out, devices=str(n), batch_size=8 // n, epochs=1, steps_per_epoch=1,
                              name=f"d{n}")) for n in (1, 2)}
print(json.dumps({n: {"first": read_history(r.run_dir / "history.csv")[0],
                      "args": json.loads((r.run_dir / "args.json").read_text()),
                      "metrics": r.metrics["devices"], "notes": r.notes,
                      "config": read_config(r.model_path)} for n, r in runs.items()}, default=str))
"""


def test_two_devices_start_where_one_does(tiny_cache: Path, tmp_path: Path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_cache), str(tmp_path)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = json.loads(out.stdout.strip().splitlines()[-1])
    one, two = runs["1"], runs["2"]
    # The same global batch of 8 (8 on one device, 4 + 4 on two) and the same initial weights: the first
    # step's loss agrees to float32 rounding of a sum taken in two halves.
    assert two["first"]["loss"] == pytest.approx(one["first"]["loss"], rel=1e-5)
    assert two["first"]["age_mae"] == pytest.approx(one["first"]["age_mae"], rel=1e-5)
    assert two["args"]["distribution"] == {
        "devices": ["cpu:0", "cpu:1"], "count": 2, "per_device_batch_size": 4, "global_batch_size": 8,
        "lr": one["args"]["lr"], "scaled_lr": 2 * one["args"]["lr"], "backend": "jax"}
    assert one["args"]["distribution"]["count"] == 1 and (one["metrics"], two["metrics"]) == (1, 2)
    assert any("data parallel over 2 devices" in n for n in two["notes"])
    # The exported file is the same model, whatever trained it. Left out of the comparison: the optimizer's
    # auto-numbered name in compile_config (both runs share one process) and shared_object_id, the Python
    # id() of the dtype policy that Keras writes to dedupe it.
    assert _structure(two["config"]["config"]) == _structure(one["config"]["config"])


def _structure(config):
    if isinstance(config, dict):
        return {k: _structure(v) for k, v in config.items() if k != "shared_object_id"}
    if isinstance(config, list):
        return [_structure(v) for v in config]
    return config


def test_device_counts_are_checked_before_any_work():
    assert parse_devices("all") is None and parse_devices("3") == 3
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(ValueError, match="'all' or a positive number"):
            parse_devices(bad)
    assert plan("1", 64, 1e-3).count == 1
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        assert plan("all", 64, 1e-3).count == 1  # TensorFlow: the one device, no distribution
        with pytest.raises(ValueError, match="JAX backend"):
            plan("2", 64, 1e-3)

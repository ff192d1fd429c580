"""Training over several devices (issue 12): the host split into two devices, as CI can do it, on both backends."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from facekit.engine.distribute import plan
from facekit.engine.recipe import parse_devices

ROOT = Path(__file__).resolve().parents[2]

# TensorFlow splits the CPU into logical devices only before its runtime starts, so first thing.
TF_SPLIT = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""

SCRIPT = """
import json, sys
from pathlib import Path
from tests.conftest import quick_config
from facekit.model.compat import read_config
from facekit.engine.runs import read_history
from facekit.engine.train import train

cache, out, task, dropout = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
# Two devices compiled, as users train: the distributed train step is what this test is about. One device,
# the reference, runs eagerly on TensorFlow (the same first step without tracing Model B a second time);
# JAX op by op is slower than its compile, so both compile there.
eager_one = sys.argv[5] == "1"
runs = {n: train(quick_config(task, cache, out, devices=str(n), batch_size=8 // n, epochs=1, steps_per_epoch=1,
                              eager=n == 1 and eager_one, dropout=dropout, name=f"d{n}")) for n in (1, 2)}
print(json.dumps({n: {"first": read_history(r.run_dir / "history.csv")[0],
                      "args": json.loads((r.run_dir / "args.json").read_text()),
                      "metrics": r.metrics["devices"], "notes": r.notes,
                      "config": read_config(r.model_path)} for n, r in runs.items()}, default=str))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_two_devices_start_where_one_does(backend: str, tiny_cache: Path, tmp_path: Path):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    if backend == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    script = (TF_SPLIT if backend == "tensorflow" else "") + SCRIPT
    # TensorFlow's replicas draw their own dropout masks (as likely as one device's, but not the same
    # bits); JAX draws the global batch's mask once. So TensorFlow is compared on Model B without dropout
    # (Model A's trunk always has spatial dropout).
    task, dropout = ("scratch", "0.3") if backend == "jax" else ("finetune", "0.0")
    eager_one = "1" if backend == "tensorflow" else "0"
    out = subprocess.run([sys.executable, "-c", script, str(tiny_cache), str(tmp_path), task, dropout, eager_one],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = json.loads(out.stdout.strip().splitlines()[-1])
    one, two = runs["1"], runs["2"]
    # The same global batch of 8 (8 on one device, 4 + 4 on two) and the same initial weights: the first
    # step's loss agrees to float32 rounding of a sum taken in two halves.
    assert two["first"]["loss"] == pytest.approx(one["first"]["loss"], rel=1e-5)
    assert two["first"]["age_mae"] == pytest.approx(one["first"]["age_mae"], rel=1e-5)
    assert two["args"]["distribution"] == {
        "devices": ["cpu:0", "cpu:1"], "count": 2, "per_device_batch_size": 4, "global_batch_size": 8,
        "lr": one["args"]["lr"], "scaled_lr": 2 * one["args"]["lr"], "backend": backend}
    assert one["args"]["distribution"]["count"] == 1 and (one["metrics"], two["metrics"]) == (1, 2)
    assert any("data parallel over 2 devices" in n for n in two["notes"])
    if backend == "tensorflow":  # per-replica batch statistics would have made the losses differ
        assert any("batch normalisation synchronised" in n for n in two["notes"])
    # The exported file is the same model, whatever trained it. Left out of the comparison: auto-numbered
    # names (both runs share one process: the optimizer's in compile_config, the backbone's input layer gets
    # a "_1") and shared_object_id, the Python id() of the dtype policy that Keras writes to dedupe it.
    assert _structure(two["config"]["config"]) == _structure(one["config"]["config"])


def _structure(config):
    if isinstance(config, str):
        return re.sub(r"^input_layer_\d+$", "input_layer", config)
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
    # This process's backend sees one CPU device: more is refused with what the machine has.
    assert plan("all", 64, 1e-3).count == 1
    with pytest.raises(ValueError, match=r"--devices 2: this machine has 1 \(cpu:0\)"):
        plan("2", 64, 1e-3)

"""The check at the end of every training run: its hand-in file judged on the run's own held-out images.

It lives in the engine, not beside ``check_model``, because it reads a run
folder (args.json, the cache, the run's split) and so needs the training
recipe; ``facekit.inference.check`` stays below the engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from facekit.contract import rgb_to_input
from facekit.data.cache import read_cache
from facekit.engine.recipe import TrainConfig
from facekit.engine.train import select
from facekit.inference.check import CheckReport, check_model
from facekit.utils.atomic import write_json


def check_run(run_dir: str | Path, keras_versions: tuple[str, ...] | None = None,
              status: Callable[[str], None] | None = None) -> CheckReport:
    """`facekit check` of a training run's hand-in file, recorded in its metrics.json under ``check``.

    Up to 32 of the run's held-out images feed it: the raw chips the cache
    was made from, read as the lecturer reads them, where they are still on
    disk; else the cached crops. ``keras_versions`` defaults to the run's
    ``check_keras``.
    """
    run_dir = Path(run_dir)
    cfg = TrainConfig.load(run_dir / "args.json")
    path = run_dir / cfg.export_name
    versions = tuple(cfg.check_keras) if keras_versions is None else keras_versions
    data = read_cache(cfg.cache, in_memory=False)  # 32 crops at most are read
    tr, va = select(data, cfg)
    held_out = va if len(va) else tr  # --full holds nothing out
    idx = held_out[:: max(1, len(held_out) // 32)][:32]
    source = Path(str(data.attrs.get("source_dir", "")))
    chips = [source / str(data.filename[i]) for i in idx]
    if chips and all(p.is_file() for p in chips):
        report = check_model(path, images=chips, keras_versions=versions, status=status)
    else:
        report = check_model(path, inputs=rgb_to_input(data.images[idx]), keras_versions=versions, status=status)
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    write_json(metrics_path, {**metrics, "check": report.to_json()})
    return report

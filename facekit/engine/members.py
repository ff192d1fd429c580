"""``--members K``: the best hand-in from one command, K members of one recipe merged into one file.

Merging several runs is what scored best (B: three refits merged, 5.20 MAE /
93.6 % against 5.33 / 93.3 % for one run), but it took a dozen commands:
train each seed, refit each, merge, check. Here one command trains member i
with the run's options and initialisation seed ``--init-seed + i`` (the split
stays the same, so every member is validated on the same held-out images),
each as an ordinary run folder beside the ensemble's (``NAME-member1`` ...,
with ``--refit`` each a refit pair, ``NAME-member1-full`` the member), and
writes the merge into the ensemble's folder ``NAME``:

    runs/<task>/<NAME>/
        age_gender_A.keras (or _B)   the merge of the members' hand-in files
        args.json                    the options every member shares
        members.json                 K, --refit, each member's run folder and figures
        metrics.json                 the merge's validation figures (split members), time, the members

Without ``--refit`` the merge is scored on the shared held-out images, read
back from disk (``facekit.engine.merging``); refit members trained on those
images, so a refit ensemble records none. ``--resume NAME`` finishes an
interrupted ensemble: finished members are reused, the one that stopped
continues where it stopped (``facekit train --resume`` or ``--refit --resume``),
the rest are trained, then the merge is made.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from facekit.data.cache import read_cache
from facekit.engine.merging import merge_into
from facekit.engine.recipe import TrainConfig
from facekit.engine.refit import refit
from facekit.engine.resume import TrainResult, finished_run, session_options
from facekit.engine.runs import MEMBERS_FILE, new_run_dir
from facekit.engine.train import held_out, select, train
from facekit.utils.atomic import write_json

MEMBER_SUFFIX = "-member{}"
# (member index from 0, member count, epochs) -> the callbacks of that member's run (a bar naming the member)
MemberCallbacks = Callable[[int, int, int], list[keras.callbacks.Callback]]


@dataclass
class EnsembleResult:
    run_dir: Path  # the ensemble's folder
    model_path: Path  # the merged hand-in file
    members: list[TrainResult]  # each member's hand-in run (with --refit, the refit)
    metrics: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def member_config(cfg: TrainConfig, i: int, ensemble: Path) -> TrainConfig:
    """Member ``i``'s options: the ensemble's, with its own initialisation seed and run name."""
    return dataclasses.replace(cfg, init_seed=cfg.run_seed + i, name=ensemble.name + MEMBER_SUFFIX.format(i + 1))


def _start(cfg: TrainConfig, k: int, with_refit: bool) -> Path:
    if k < 2:
        raise ValueError(f"--members takes 2 or more (an ensemble of {k} is one run: leave the option out)")
    if cfg.full:
        raise ValueError("--members validates its merge on the split; refit the members with --refit, not --full")
    if cfg.snapshots > 1:  # a member would be a merge already, and merges hold no single age distribution
        raise ValueError("--members merges runs and --snapshots merges the cycles of one run: use one of them")
    ensemble = new_run_dir(cfg.project, cfg.task, cfg.name)
    names = [member_config(cfg, i, ensemble).name for i in range(k)]
    taken = [p for name in names if (p := ensemble.parent / name).exists()]
    if taken:
        ensemble.rmdir()
        raise ValueError(f"{taken[0]}: exists, and member runs of {ensemble} would be written there; choose another "
                         "--name, or continue that ensemble with --resume")
    write_json(ensemble / "args.json", cfg.to_json())
    write_json(ensemble / MEMBERS_FILE, {"members": k, "refit": with_refit, "runs": names})
    return ensemble


def _reopen(folder: Path) -> tuple[TrainConfig, int, bool]:
    record_path = folder / MEMBERS_FILE
    if not record_path.is_file():
        raise ValueError(f"{folder}: not an ensemble folder (no {MEMBERS_FILE}); --members --resume takes the "
                         "folder `train --members` made, such as runs/finetune/exp")
    try:
        record = json.loads(record_path.read_text())
        return TrainConfig.load(folder / "args.json"), int(record["members"]), bool(record["refit"])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{record_path}: not a readable record of the ensemble ({exc}); restore it and "
                         f"{folder / 'args.json'}, or start a new ensemble") from None


def train_members(cfg: TrainConfig, k: int = 0, with_refit: bool = False, callbacks: MemberCallbacks | None = None,
                  resume: str | Path | None = None, given: dict[str, Any] | None = None) -> EnsembleResult:
    """Train (or finish) the ``k`` members and merge them; ``resume``: the ensemble folder, whose records win
    over ``cfg``, ``k`` and ``with_refit``. ``given``: the options set for this session, which a resumed
    ensemble refuses or applies as a resumed run does (``facekit.engine.resume.session_options``)."""
    notes: list[str] = []
    if resume is not None:
        ensemble = Path(resume)
        cfg, k, with_refit = _reopen(ensemble)
        cfg = session_options(ensemble, cfg, given or {}, notes)
    else:
        ensemble = _start(cfg, k, with_refit)
    members: list[TrainResult] = []
    for i in range(k):
        mcfg = member_config(cfg, i, ensemble)
        folder = ensemble.parent / mcfg.name
        started = (folder / "args.json").is_file()

        def bars(epochs: int, i: int = i) -> list[keras.callbacks.Callback]:
            return callbacks(i, k, epochs) if callbacks else []

        if with_refit:
            _, result = refit(mcfg, bars, resume=folder if started else None)
        else:
            result = finished_run(folder) or train(mcfg, bars(mcfg.epochs), resume=folder if started else None,
                                                   given=given)
        if started and not result.notes:
            result.notes.append(f"member {i + 1}: {result.run_dir} reused (finished earlier)")
        notes.extend(result.notes)
        members.append(result)
    files = [m.model_path for m in members]
    model_path = ensemble / cfg.export_name
    val = None
    if not with_refit:  # every member held out the same images: the merge is scored on them
        data = read_cache(cfg.cache, in_memory=False)
        images, ages, genders, _ = held_out(cfg, data, select(data, cfg)[1])
        val = (images, ages, genders)
    figures = merge_into(files, model_path, cfg.output_order, val)
    first = members[0].metrics
    metrics = {
        "model": str(model_path),
        "task": cfg.task,
        "backbone": first.get("backbone"),
        "members": [{"run_dir": str(m.run_dir), "model": str(m.model_path), "init_seed": cfg.run_seed + i,
                     **{key: m.metrics.get(key) for key in ("best_epoch", "val_age_mae", "val_gender_accuracy",
                                                            "val_score", "train_seconds", "refit_of")}}
                    for i, m in enumerate(members)],
        "refit": with_refit,
        "monitor": None if with_refit else first.get("monitor"),
        "val_age_mae": figures.get("val_age_mae"),
        "val_gender_accuracy": figures.get("val_gender_accuracy"),
        "val_score": figures.get("val_score"),
        "val_images": len(val[1]) if val else 0,
        "train_images": first.get("train_images"),
        "train_seconds": round(sum(float(m.metrics.get("train_seconds") or 0) for m in members), 1),
        **{key: first.get(key) for key in ("backend", "keras", "gpu", "precision", "devices")},
    }
    write_json(ensemble / "metrics.json", metrics)
    notes.append(f"{model_path.name} merges the {k} members' files ({', '.join(str(f) for f in files)})")
    return EnsembleResult(ensemble, model_path, members, metrics, notes)

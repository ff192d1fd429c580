"""facekit beyond the course's 5,000 chips: prep and training on a large synthetic folder.

    python -m benchmarks.scale [--images 100000] [--steps 30] [--work /tmp/facekit-scale] [--again]

Builds a folder of ``--images`` UTKFace-named JPEGs: the 5,000 chips of
train_val, each copy changed by its own random flip, shift, brightness and
contrast (so no two share pixels and prep cannot reuse anything), with the
labels of the chip it came from. Then, each in a child process whose peak
resident memory is read from the kernel (``ru_maxrss`` of the children):

1. ``facekit prep`` of the whole folder: images per second, peak memory;
2. the same prep after adding 1 % new images (incremental: only those are detected, and the
   unchanged files are not even read);
3. ``facekit train scratch --full`` for one epoch capped at ``--steps``
   batches, with the crops in memory and streamed from the cache
   (``--cache-mode``): training images per second and peak memory.

Writes benchmarks/results/scale-<images>.json with machine and commit.
``--again`` repeats only step 2 on the folder and cache a run left (another
1 % of new images), to measure a change to incremental prep without the
hour of step 1; it writes scale-<images>-again.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import TRAIN_VAL, save


def build_folder(dest: Path, n: int, seed: int = 0) -> None:
    """``n`` distinct JPEGs made from the train_val chips, named with the labels of their source."""
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    chips = sorted(p for p in TRAIN_VAL.iterdir() if re.match(r"\d+_[01]_\d_", p.name))
    rng = np.random.default_rng(seed)
    for i in range(n):
        src = chips[i % len(chips)]
        age, gender, race = src.name.split("_")[:3]
        rgb = np.asarray(Image.open(src).convert("RGB"), np.float32)
        if rng.random() < 0.5:
            rgb = rgb[:, ::-1]
        dy, dx = rng.integers(-6, 7, size=2)
        rgb = np.roll(rgb, (int(dy), int(dx)), axis=(0, 1))
        rgb = np.clip((rgb - 128) * rng.uniform(0.8, 1.2) + 128 + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(dest / f"{age}_{gender}_{race}_{20260000000000000 + i}.jpg.chip.jpg", quality=90)


def run_child(cmd: list[str]) -> dict[str, Any]:
    """Wall time, peak resident memory and the ``--json`` document of one facekit command, run as a child
    process.

    ``os.wait4`` gives that child's own peak (prep's worker processes, about
    210 MB each, are not in it); ``RUSAGE_CHILDREN`` would be a running maximum
    over every child so far.
    """
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err.read().decode()[-2000:]}")
        out.seek(0)
        document = json.loads(out.read().decode() or "null")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # kB on Linux
            "json": document}


def prep_counts(run: dict[str, Any]) -> dict[str, Any]:
    """What a prep did: rows written, how many were reused from the old cache, and of those how many
    files were not even read (same size and modification time)."""
    counts = run.pop("json")["report"]["counts"]
    return {**run, **{k: counts.get(k) for k in ("cached", "reused_rows", "unread_files")}}


def add_and_prep(folder: Path, cache: Path, images: int, facekit: list[str], workers: list[str]) -> dict[str, Any]:
    """Add 1 % of ``images`` new distinct images to the folder (a new name prefix each round) and prep again."""
    n = max(1, images // 100)
    round_ = (len(list(folder.iterdir())) - images) // n + 1
    extra = folder.parent / "extra"
    shutil.rmtree(extra, ignore_errors=True)
    build_folder(extra, n, seed=round_)
    for p in extra.iterdir():
        p.rename(folder / p.name.replace("2026", str(2026 + round_), 1))
    return prep_counts(run_child([*facekit, "prep", str(folder), "-o", str(cache), "--json", *workers]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=30, help="training batches per measured epoch")
    ap.add_argument("--work", type=Path, default=Path("/tmp/facekit-scale"))
    ap.add_argument("--workers", type=int, default=None, help="prep processes (default: all cores)")
    ap.add_argument("--again", action="store_true", help="only another incremental prep of a previous run's folder")
    args = ap.parse_args()
    os.environ.setdefault("FACEKIT_MODEL_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "models"))
    facekit = [sys.executable, "-c", "from facekit_cli.main import main; main()"]
    folder, cache = args.work / "faces", args.work / "scale.h5"
    workers = ["-w", str(args.workers)] if args.workers else []
    result: dict[str, object] = {"images": args.images}
    if args.again:
        if not cache.is_file():
            raise SystemExit(f"{cache}: no cache from a previous run to prep again")
        result["files_before"] = len(list(folder.iterdir()))
        result["prep_after_adding_1_percent"] = add_and_prep(folder, cache, args.images, facekit, workers)
        print(json.dumps(result, indent=2))
        print(f"wrote {save(f'scale-{args.images}-again', result)}")
        return
    if not folder.is_dir() or len(list(folder.iterdir())) != args.images:
        shutil.rmtree(args.work, ignore_errors=True)
        t = time.perf_counter()
        build_folder(folder, args.images)
        result["build_folder_seconds"] = round(time.perf_counter() - t, 1)
    cache.unlink(missing_ok=True)
    prep = prep_counts(run_child([*facekit, "prep", str(folder), "-o", str(cache), "--json", *workers]))
    prep["images_per_second"] = round(args.images / prep["seconds"], 1)
    result["prep"] = prep
    result["prep_after_adding_1_percent"] = add_and_prep(folder, cache, args.images, facekit, workers)
    for mode in ("memory", "stream"):
        # --full: no held-out part to validate on, so the epoch's seconds are training's alone.
        run = run_child([*facekit, "train", "scratch", "--cache", str(cache), "--epochs", "1", "--steps",
                         str(args.steps), "--full", "--cache-mode", mode, "--no-check", "--project",
                         str(args.work / "runs"), "--name", mode, "--json"])
        run.pop("json")
        metrics = json.loads((args.work / "runs" / "scratch" / mode / "metrics.json").read_text())
        run["train_images_per_second"] = round(args.steps * 64 / metrics["train_seconds"], 1)
        run["cache_mode"] = metrics["cache_mode"]
        result[f"train_{mode}"] = run
        shutil.rmtree(args.work / "runs" / "scratch" / mode)
    print(json.dumps(result, indent=2))
    print(f"wrote {save(f'scale-{args.images}', result)}")


if __name__ == "__main__":
    main()

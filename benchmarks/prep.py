"""Prep throughput: all cores against a plain one-process loop over the same work.

    python -m benchmarks.prep [--data DIR] [--limit N] [--workers N]

Both runs read, detect and align the same files (the work of ``facekit prep``
without the HDF5 write). Writes benchmarks/results/prep.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from benchmarks.common import TRAIN_VAL, save
from facekit.data.imageio import list_files
from facekit.face.template import load_template
from facekit.prep.workers import PrepOptions, map_files


def rate(paths: list[str], workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    aligned = sum(r.aligned for r in map_files(paths, PrepOptions(), load_template(), workers))
    return len(paths) / (time.perf_counter() - start), aligned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=TRAIN_VAL)
    ap.add_argument("--limit", type=int, default=None, help="first N files (default: all)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    os.environ.setdefault("FACEKIT_MODEL_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "models"))
    paths = [str(p) for p in list_files(args.data)][: args.limit]
    serial, a1 = rate(paths, 1)
    parallel, a2 = rate(paths, args.workers)
    result = {
        "images": len(paths),
        "workers": args.workers,
        "serial_images_per_s": round(serial, 1),
        "parallel_images_per_s": round(parallel, 1),
        "speedup": round(parallel / serial, 2),
        "aligned": [a1, a2],
    }
    print(f"{len(paths)} images: one process {serial:.1f}/s, {args.workers} workers {parallel:.1f}/s, "
          f"speed-up x{parallel / serial:.2f}")
    print(f"wrote {save('prep', result)}")


if __name__ == "__main__":
    main()

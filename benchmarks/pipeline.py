"""Training data pipeline throughput: can the CPU-side augmentation keep a GPU fed?

    python -m benchmarks.pipeline [--cache cache/train_val.h5] [--augment default] [--batches 30]

Runs FaceBatches.__getitem__ (albumentations + BGR/255 conversion + age
distributions) over a pool of threads, as keras.utils.PyDataset does with
``workers=N``, and reports images per second in all and per worker.
Writes benchmarks/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import save
from facekit.data.augment import build_augment
from facekit.data.cache import read_cache
from facekit.data.dataset import FaceBatches


def rate(ds: FaceBatches, workers: int, batches: int) -> float:
    idx = [i % len(ds) for i in range(batches)]
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        n = sum(len(x) for x, _ in pool.map(ds.__getitem__, idx))
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="cache/train_val.h5")
    ap.add_argument("--augment", default="default")
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    data = read_cache(args.cache)
    ds = FaceBatches(data.images, data.age, data.gender, args.batch_size, build_augment(args.augment), shuffle=True)
    ds[0]  # warm-up (first call builds the thread-local pipeline)
    rows = []
    for workers in sorted({1, 2, os.cpu_count() or 1, 4}):
        r = rate(ds, workers, args.batches)
        rows.append({"workers": workers, "images_per_s": round(r, 1), "per_worker": round(r / workers, 1)})
        print(f"{workers} workers: {r:7.1f} images/s ({r / workers:.1f} per worker)")
    print(f"wrote {save('pipeline', {'augment': args.augment, 'batch_size': args.batch_size, 'rows': rows})}")


if __name__ == "__main__":
    main()

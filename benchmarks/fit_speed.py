"""Training steps of ``facekit.engine.train`` with and without undoing TensorFlow's malloc patch.

    python -m benchmarks.fit_speed [--task scratch] [--steps 30] [--repeats 2] [--tag NAME]

TensorFlow 2.21 fixes glibc's trim threshold at 128 KB when a PyDataset's
generator starts ("Memory patch applied"), which also stops glibc adapting its
mmap threshold: every buffer over 128 KB is then mmapped and unmapped afresh at
each step. ``facekit.engine.device.MallocDefaults`` puts glibc's adaptive values back
during fit. ``train_speed`` cannot see any of this (``train_on_batch`` never
starts a generator), so this runs the real ``facekit.engine.train`` on the prepped
cache, once as shipped and once with that callback replaced by a no-op, each in
a fresh process (the patch and the malloc settings last as long as a process).
The window is ``--steps`` training batches after three warm-up batches, so
compiling and the epoch's validation are outside it. Writes
benchmarks/results/fit_speed[-TAG].json and .md with machine and commit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, report, save, table

WARMUP = 3

CHILD = """
import json, resource, sys, time
from pathlib import Path
import keras
import facekit.engine.train as T
from facekit.engine.recipe import TrainConfig

task, cache, project, steps, variant = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
options = json.loads(sys.argv[6])
if variant == "patched":
    T.MallocDefaults = keras.callbacks.Callback  # a no-op in its place: TensorFlow's setting stays

class Window(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if batch == WARMUP:
            self.start = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)

    def on_train_batch_end(self, batch, logs=None):
        if batch == WARMUP + steps - 1:
            t0, r0 = self.start
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            self.result = {"seconds": time.perf_counter() - t0, "minor_faults": r1.ru_minflt - r0.ru_minflt,
                           "system_seconds": r1.ru_stime - r0.ru_stime, "user_seconds": r1.ru_utime - r0.ru_utime}

window = Window()
cfg = TrainConfig.for_task(task, **{"cache": cache, "project": project, "name": variant, "epochs": 1,
                                    "steps_per_epoch": WARMUP + steps, **options})
T.train(cfg, callbacks=[window])
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({**window.result, "batch_size": cfg.batch_size, "peak_rss_mb": peak_mb}))
""".replace("WARMUP", str(WARMUP))


def run_variant(task: str, cache: Path, project: Path, steps: int, variant: str,
                options: dict | None = None) -> dict[str, float]:
    """One fresh process training ``steps`` measured batches; ``options`` are TrainConfig overrides (tests)."""
    out = subprocess.run([sys.executable, "-c", CHILD, task, str(cache), str(project), str(steps), variant,
                          json.dumps(options or {})],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode or not lines:
        raise SystemExit(f"{variant} run failed:\n{out.stderr[-3000:]}")
    r = json.loads(lines[-1][len("RESULT "):])
    return {"seconds_per_step": round(r["seconds"] / steps, 2),
            "images_per_second": round(steps * r["batch_size"] / r["seconds"], 1),
            "minor_faults_per_step": round(r["minor_faults"] / steps),
            "system_seconds_per_step": round(r["system_seconds"] / steps, 2),
            "user_seconds_per_step": round(r["user_seconds"] / steps, 2),
            "peak_rss_mb": round(r["peak_rss_mb"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=["scratch", "finetune"], default="scratch")
    ap.add_argument("--cache", type=Path, default=ROOT / "cache" / "train_val.h5")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2, help="processes per variant, in ABBA order")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    if not args.cache.is_file():
        raise SystemExit(f"{args.cache}: no cache; run `facekit prep ../shared/data/train_val` first")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("the malloc patch is TensorFlow's: run with KERAS_BACKEND=tensorflow")
    # ABBA order over repeats, so a load that drifts during the benchmark weighs on both variants alike.
    order = [v for i in range(args.repeats) for v in (("facekit", "patched") if i % 2 == 0 else ("patched", "facekit"))]
    runs: dict[str, list[dict[str, float]]] = {"facekit": [], "patched": []}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in order:
            runs[variant].append(run_variant(args.task, args.cache, Path(tmp), args.steps, variant))
    rows = {v: {k: round(sum(r[k] for r in rs) / len(rs), 2) for k in rs[0]} for v, rs in runs.items()}
    speedup = round(rows["patched"]["seconds_per_step"] / rows["facekit"]["seconds_per_step"], 2)
    name = "fit_speed" + (f"-{args.tag}" if args.tag else "")
    dest = save(name, {"backend": "tensorflow", "task": args.task, "steps": args.steps, "rows": rows,
                       "runs": runs, "speedup": speedup})
    print(f"wrote {dest}")
    labels = {"facekit": "as shipped (glibc's adaptive thresholds during fit)",
              "patched": "TensorFlow's M_TRIM_THRESHOLD=128 KB left in place"}
    about = (f"tensorflow, task {args.task}, {args.steps} steps after {WARMUP} warm-up, "
             f"mean of {args.repeats} processes each")
    rows_md = table(["malloc settings", "s per step", "images/s", "minor faults per step", "system s per step",
                     "user s per step", "peak RSS MB"],
                    [[labels[k], v["seconds_per_step"], v["images_per_second"], f"{v['minor_faults_per_step']:,.0f}",
                      v["system_seconds_per_step"], v["user_seconds_per_step"], f"{v['peak_rss_mb']:,.0f}"]
                     for k, v in rows.items()])
    print(report(name, [about], rows_md, [f"speedup: {speedup}x"]).read_text())


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# On the lent GPU machine, in the checkout's root, with .whl and .gpu carried (benchmarks/gpu/pack.sh):
# install the wheels, prep the cache from the saved face points (no MediaPipe there), run COMMAND on
# Keras's JAX backend under a time limit, and put what it wrote into $OUT as results.tar.gz (benchmark
# results and each run's records: args, metrics, history; not the weights) plus its log.
# The cache, the installed packages and runs/ stay on the machine while it is warm, so the next call
# starts at COMMAND, and `--resume` continues runs that a time limit stopped.
#
#   bash benchmarks/gpu/session.sh COMMAND...      e.g. python3 -m benchmarks.accuracy --data .gpu/train_val ...
#   FACEKIT_GPU_LIMIT=540 (seconds, default) ends COMMAND well inside a call's 10 minutes.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: bash benchmarks/gpu/session.sh COMMAND..." >&2; exit 2; }
[ -f .gpu/train_val.detections.json ] || { echo ".gpu/ is missing: run benchmarks/gpu/pack.sh here and carry .whl and .gpu" >&2; exit 2; }
py=${PYTHON:-python3}
if [ ! -f .site/.installed ]; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
  ln -sfn "$PWD/cli" .site/facekit_cli  # the CLI installs as facekit_cli (pyproject.toml)
  touch .site/.installed
fi
export PYTHONPATH="$PWD/.site:$PWD" KERAS_BACKEND=${KERAS_BACKEND:-jax} FACEKIT_MODEL_DIR="$PWD/.gpu/models"
export PYTHONUNBUFFERED=1
out=${OUT:-.gpu/out}
mkdir -p "$out"
if [ ! -f cache/train_val.h5 ]; then
  "$py" -m facekit_cli.main prep .gpu/train_val --out cache/train_val.h5 \
    --detections .gpu/train_val.detections.json --workers "$(nproc)" 2>&1 | tee "$out/prep.log"
fi
touch .gpu/started
set +e
timeout "${FACEKIT_GPU_LIMIT:-540}" "$@" 2>&1 | tee "$out/command.log"
rc=${PIPESTATUS[0]}
set -e
# Everything small this call wrote: new results, and the records of runs it touched (their weights stay).
dirs=()
for d in benchmarks/results runs; do [ -d "$d" ] && dirs+=("$d"); done
{ [ ${#dirs[@]} -eq 0 ] || find "${dirs[@]}" -type f -newer .gpu/started \
    \( -name '*.json' -o -name '*.md' -o -name '*.csv' -o -name '*.png' \) -print0; } \
  | tar czf "$out/results.tar.gz" --null -T -
echo "command exit status $rc; results.tar.gz holds $(tar tzf "$out/results.tar.gz" | wc -l) files"
exit "$rc"

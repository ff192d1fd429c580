#!/usr/bin/env bash
# Here, before a session's first call to the lent GPU machine: put what that machine lacks into .whl/
# and .gpu/ (both ignored by git), within the 64 MiB a call may carry. The machine has JAX but no Keras,
# albumentations or MediaPipe, and cannot fetch anything; a 5,000-crop cache is 200 MB, so the images
# travel as their JPEGs (20 MB) with the cache's face points (--save-detections, 1.8 MB), and
# benchmarks/gpu/session.sh preps them there without MediaPipe.
#
#   benchmarks/gpu/pack.sh [FOLDER]      (default ../shared/data/train_val)
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${FACEKIT_SHARED:-../shared}
data=${1:-$shared/data/train_val}
py=${PYTHON:-.venv/bin/python}
[ -d "$data" ] || { echo "$data: no such folder of images" >&2; exit 2; }
if ! ls .whl/keras-*.whl >/dev/null 2>&1; then
  "$shared/gpu/wheels.sh" .whl >/dev/null
fi
# The same Pillow as here: the pixel digests that match images to their saved points come from its decoder.
pillow=$("$py" -c 'import PIL; print(PIL.__version__)')
if ! ls .whl/pillow-"$pillow"-*.whl >/dev/null 2>&1; then
  rm -f .whl/pillow-*.whl
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "pillow==$pillow"
fi
rm -rf .gpu
mkdir -p .gpu/models
cp -r "$data" .gpu/train_val
cp -r "$shared/models/keras" .gpu/models/keras
chmod -R u+w .gpu  # copies of read-only files; the next pack must be able to remove them
# Reuses the cache when it is up to date (seconds); otherwise preps the folder here first.
FACEKIT_MODEL_DIR=${FACEKIT_MODEL_DIR:-$shared/models} "$py" -m facekit_cli.main prep "$data" \
  --save-detections .gpu/train_val.detections.json
du -sh .whl .gpu
total=$(du -cb .whl .gpu | tail -1 | cut -f1)
if [ "$total" -gt $((60 * 1024 * 1024)) ]; then
  echo "warning: .whl and .gpu hold $((total / 1024 / 1024)) MiB; a call carries 64 MiB with the checkout" >&2
fi

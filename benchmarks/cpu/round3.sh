#!/usr/bin/env bash
# Issue 47's levers at full length on a CPU, seed 0 each: the background job of every session without a GPU,
# which the next session starts again and which picks up where the last one stopped. Each line is an accuracy
# series with --resume, which keeps the seeds its results file holds and continues the run folder a session's
# end stopped (train --resume), so a finished line costs nothing. Run from a checkout with the cache prepped:
#
#   nohup nice -n 19 bash benchmarks/cpu/round3.sh > round3-cpu.log 2>&1 &
#
# Accuracy series, not ablation rows: round two measured each model's defaults this way on these CPUs
# (B: accuracy-ema, A: accuracy-long, seed 0), so no baseline trains again; benchmarks/levers.py pairs each
# line's results file with them (tested: every line is a declared lever and every declared lever queued
# here is a line). A's strong augmentation first (the run under way when the queue began), then B's levers,
# which cost least: a B run takes 1-2.5 hours on a 2-core CPU, an A run 2-5.
set -euo pipefail
series() { "${PYTHON:-python3}" -m benchmarks.accuracy --seeds 0 --resume "$@"; }
series --tasks scratch --set augment=strong --tag a-strong-seed0
series --tasks finetune --set backbone_lr=0.1 --tag b-backbone-lr-0.1-seed0
series --tasks finetune --set snapshots=3 --tag b-snapshots-3-seed0
series --tasks finetune --set race_weight=0.2 --tag b-race-0.2-seed0
series --tasks finetune --set backbone_lr=0.5 layer_decay=0.95 --tag b-layer-decay-0.95-seed0
series --tasks finetune --set snapshots=2 --tag b-snapshots-2-seed0
series --tasks scratch --set mix=cutmix --tag a-cutmix-seed0
series --tasks scratch --set snapshots=3 --tag a-snapshots-3-seed0
series --tasks scratch --set race_weight=0.2 --tag a-race-0.2-seed0
series --tasks scratch --set snapshots=2 --tag a-snapshots-2-seed0

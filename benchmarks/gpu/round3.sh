#!/usr/bin/env bash
# Issue 47's lever table on the lent GPU machine, seed 0 of each against a baseline trained there
# (same backend, same commit), most expected value per device minute first. Run it through session.sh:
#
#   bash benchmarks/gpu/session.sh bash benchmarks/gpu/round3.sh
#
# A call's time limit may stop it anywhere: the next call (or the next session, from the results file
# committed here) skips the rows benchmarks/results/ablation-round3.json holds and continues a run the
# limit cut short (ablation --resume). Tested: every variant exists and applies to its task. When it is
# done, benchmarks/gpu/confirm.sh runs the levers that paid over 3 seeds.
set -euo pipefail
ablation() { python3 -m benchmarks.ablation --data .gpu/train_val --tag round3 --resume "$@"; }
ablation --task finetune --variants baseline backbone-lr-0.1 snapshots-3 race-0.2 layer-decay-0.95 aug-strong cutmix
# B's age from strong augmentation, its gender from CutMix (round two: each better at one), one file:
# needs both runs' files, which live on the machine only while it stays warm.
b=runs/ablation/finetune/ablation-round3-finetune
if [ ! -f benchmarks/results/ensemble-round3-b-strong-age-cutmix-gender.json ]; then
  if [ -f "$b-aug-strong-seed0/age_gender_B.keras" ] && [ -f "$b-cutmix-seed0/age_gender_B.keras" ]; then
    python3 -m benchmarks.ensemble "$b-aug-strong-seed0" "$b-cutmix-seed0" --data .gpu/train_val \
      --age-from 1 --gender-from 2 --tag round3-b-strong-age-cutmix-gender
  else
    echo "skipped the strong-age, cutmix-gender merge: its two runs are not on this machine" >&2
  fi
fi
ablation --task scratch --variants baseline snapshots-3 race-0.2 aug-strong cutmix snapshots-2
ablation --task finetune --variants snapshots-2
# The next lever for A after the list (benchmarks/cpu/round3.sh says why): 90 epochs, the same accuracy
# series as the CPU queue's line, so either machine's file completes it, judged against A's defaults.
python3 -m benchmarks.accuracy --data .gpu/train_val --resume --seeds 0 --tasks scratch --set epochs=90 \
  --tag a-epochs-90-seed0

#!/usr/bin/env bash
# After round three: each lever that paid in its one-seed screen (benchmarks/results/ablation-round3.json)
# and is not a default, confirmed over 3 seeds at full length, beside the defaults over the same seeds on
# this machine (the series each lever is judged against). Run it through session.sh:
#
#   bash benchmarks/gpu/session.sh bash benchmarks/gpu/confirm.sh [ablation-round3]
#
# benchmarks.levers decides what to run (the results page's "Levers" section shows the same commands);
# every call resumes (accuracy --resume keeps the seeds a results file holds and continues a run a limit
# stopped), and the results page judges each confirmed lever once its series has landed here.
set -euo pipefail
ablation=${1:-ablation-round3}
plan=$(python3 -m benchmarks.levers --confirm "$ablation")
if [ -z "$plan" ]; then
  echo "no lever of $ablation paid and awaits confirmation" >&2
  exit 0
fi
while IFS= read -r command; do
  eval "python3 -m $command --data .gpu/train_val --resume" </dev/null
done <<< "$plan"

#!/usr/bin/env bash
# The algorithm comparison: the same four peers, data streams and token budget
# (netem/scenarios/exp-4.toml) trained by allreduce, diloco, local and gossip with three codecs, each
# run through the emulated WAN; then a table (markdown and JSON) and a loss-vs-bytes plot.
# Usage: bash bench/algorithms.sh [OUT_DIR]   (about 20 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/algorithms-$(date +%Y%m%d-%H%M%S)}
scenario=${MURMUR_EXPERIMENT_SCENARIO:-netem/scenarios/exp-4.toml}
[ -x build/murmur ] || bash scripts/build.sh
[ -f data/brown-byte/meta.json ] || build/murmur data prepare --corpus brown --tokenizer byte --out data/brown-byte
runs=("allreduce" "diloco" "local" "gossip int8:block=64" "gossip int4:block=64" "gossip sign:block=256")
for r in "${runs[@]}"; do
  read -r algo codec <<<"$r"
  name=$algo${codec:+-${codec%%:*}}
  if [ -f "$out/$name/summary.json" ]; then echo "$name: done already"; continue; fi
  echo "== $name"
  build/murmur netem run "$scenario" --out "$out/$name" --algo "$algo" --progress-s 60 \
    -- ${codec:+--codec "$codec"} || echo "$name: the run failed (its report says how)"
done
python3 bench/algorithms_report.py "$out"

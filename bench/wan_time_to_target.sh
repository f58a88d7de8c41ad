#!/usr/bin/env bash
# Time to a target loss on the wan-3sites-8 scenario: the same 8 peers, links and timeline
# trained by gossip, diloco and allreduce for the same wall time; the target is the loss allreduce
# reaches by the end, and each algorithm's time is when the mean train loss of its peers first gets
# there (10-step loss windows of every peer, bench/time_to_target.py).
# Usage: bash bench/wan_time_to_target.sh [OUT_DIR] [DURATION, default 15min] [PEER FLAGS...]
# Peer flags go to every peer and override the scenario's [training] keys, e.g. `--batch 8 --context 256`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/wan-ttt-$(date +%Y%m%d-%H%M%S)}
duration=${2:-15min}
shift $(( $# < 2 ? $# : 2 ))
[ -x build/murmur ] || bash scripts/build.sh
[ -f data/brown-byte/meta.json ] || build/murmur data prepare --corpus brown --tokenizer byte --out data/brown-byte
for algo in allreduce diloco gossip; do
  if [ -f "$out/$algo/summary.json" ]; then echo "$algo: done already"; continue; fi
  echo "== $algo"
  build/murmur netem run netem/scenarios/wan-3sites-8.toml --out "$out/$algo" --algo "$algo" \
    --duration "$duration" --progress-s 60 -- "$@" || echo "$algo: the run failed (its report says how)"
done
python3 bench/time_to_target.py "$out"

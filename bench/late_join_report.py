#!/usr/bin/env python3
"""How close a late joiner's loss comes to the swarm's, per round after it joined.

Usage: late_join_report.py RUN_DIR JOINER   (RUN_DIR: a `murmur netem run` output directory)
Reads every peer's log.jsonl; for the joiner's rounds after its "adopted" event, prints its round
loss (mean train loss of the round's steps), the mean over the other peers at the same round, and
the relative gap; writes RUN_DIR/late_join.json. Exit status 1 when the joiner never adopted a state.
"""
import json
import pathlib
import sys


def rounds_of(log):
    out, adopted = {}, None
    for line in log.read_text().splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if e.get("event") == "round":
            out[e["round"]] = e["loss"]
        elif e.get("event") == "adopted":
            adopted = e["round"]
    return out, adopted


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run, joiner = pathlib.Path(sys.argv[1]), sys.argv[2]
    logs = {p.parent.name.removeprefix("peer-"): p for p in sorted(run.glob("peer-*/log.jsonl"))}
    if joiner not in logs:
        sys.exit(f"no log for peer {joiner!r} in {run} (peers: {', '.join(logs)})")
    mine, adopted = rounds_of(logs[joiner])
    if adopted is None:
        print(f"{joiner} never adopted a neighbour's state", file=sys.stderr)
        sys.exit(1)
    others = [rounds_of(p)[0] for name, p in logs.items() if name != joiner]
    rows = []
    for r in sorted(k for k in mine if k >= adopted):
        peers = [o[r] for o in others if r in o]
        if not peers:
            continue
        swarm = sum(peers) / len(peers)
        rows.append({"round": r, "rounds_after_join": r - adopted + 1, "joiner_loss": mine[r],
                     "swarm_loss": swarm, "gap": (mine[r] - swarm) / swarm})
    print(f"{joiner} adopted round {adopted}'s state")
    print("| round | rounds after join | joiner loss | others' mean | gap |")
    print("| --- | --- | --- | --- | --- |")
    for x in rows:
        print(f"| {x['round']} | {x['rounds_after_join']} | {x['joiner_loss']:.4f} | {x['swarm_loss']:.4f} "
              f"| {100 * x['gap']:+.2f} % |")
    within = [x["rounds_after_join"] for x in rows if abs(x["gap"]) <= 0.05]
    first = min(within) if within else None
    print(f"first round within 5 %: {first if first is not None else 'none'} (target: 3 or fewer)")
    (run / "late_join.json").write_text(json.dumps(
        {"joiner": joiner, "adopted_round": adopted, "rounds": rows, "first_round_within_5pct": first},
        indent=1))


if __name__ == "__main__":
    main()

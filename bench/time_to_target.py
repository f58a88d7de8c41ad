#!/usr/bin/env python3
"""Time to target loss across `murmur netem run` reports: OUT/<algo>/rounds.csv for each algorithm.

The target is the mean train loss the reference run (allreduce) has at its end, taken over its peers'
last rounds. A run's time to target is the first wall time at which the mean of its peers' latest train
losses is at or below the target. Writes OUT/time_to_target.json and prints a table.
"""
import csv
import json
import pathlib
import sys


def series(rounds_csv):
    """(time_s, mean over peers of each peer's latest train loss) at every logged round."""
    rows = []
    with open(rounds_csv) as f:
        for row in csv.DictReader(f):
            try:
                rows.append((float(row["time_s"]), row["peer"], float(row["loss"])))
            except (KeyError, ValueError):
                continue
    rows.sort()
    latest, out = {}, []
    for t, peer, loss in rows:
        latest[peer] = loss
        out.append((t, sum(latest.values()) / len(latest)))
    return out


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: time_to_target.py OUT_DIR [REFERENCE_RUN]")
    out = pathlib.Path(sys.argv[1])
    ref_name = sys.argv[2] if len(sys.argv) == 3 else "allreduce"
    runs = {p.parent.name: series(p) for p in sorted(out.glob("*/rounds.csv"))}
    if ref_name not in runs or not runs[ref_name]:
        sys.exit(f"no rounds for the reference run '{ref_name}' under {out}")
    target = runs[ref_name][-1][1]
    result = {"target_loss": target, "reference": ref_name, "runs": {}}
    for name, s in runs.items():
        hit = next((t for t, loss in s if loss <= target), None)
        result["runs"][name] = {"time_to_target_s": hit, "final_loss": s[-1][1] if s else None,
                                "last_round_s": s[-1][0] if s else None}
    ref_t = result["runs"][ref_name]["time_to_target_s"]
    print(f"target: mean train loss {target:.4f} (where {ref_name} ends)")
    print("| run | time to target (s) | speed-up vs " + ref_name + " | final loss |")
    print("| --- | --- | --- | --- |")
    for name, r in result["runs"].items():
        t = r["time_to_target_s"]
        r["speedup"] = ref_t / t if t and ref_t else None
        hit = "not reached" if t is None else f"{t:.0f}"
        speedup = "n/a" if r["speedup"] is None else f"{r['speedup']:.1f}x"
        final = "n/a" if r["final_loss"] is None else f"{r['final_loss']:.4f}"
        print(f"| {name} | {hit} | {speedup} | {final} |")
    (out / "time_to_target.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Time to target loss across `murmur netem run` reports: OUT/<algo>/ for each algorithm.

Every peer logs the mean train loss of each 10 steps (`--log-every`, event "steps" in
peer-*/log.jsonl), whatever its algorithm, so all runs are compared on the same windows. The target is
the mean over peers of their latest window at the reference run's (allreduce's) end. A run's time to
target is the first wall time since the run's start at which the mean of its peers' latest windows is
at or below the target. Writes OUT/time_to_target.json and prints a table.
"""
import json
import pathlib
import sys


def events(path):
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a killed peer


def series(run_dir):
    """(seconds since the run's start, mean over peers of each peer's latest window loss)."""
    starts = [e for e in events(run_dir / "events.jsonl") if e.get("event") == "start"]
    if not starts:
        return []
    t0 = starts[0]["time"] - starts[0]["t_s"]
    rows = []
    for log in sorted(run_dir.glob("peer-*/log.jsonl")):
        for e in events(log):
            if e.get("event") == "steps":
                rows.append((e["time"] - t0, log.parent.name, float(e["loss"])))
    rows.sort()
    peers = {peer for _, peer, _ in rows}
    latest, out = {}, []
    for t, peer, loss in rows:
        latest[peer] = loss
        if len(latest) == len(peers):  # a mean over every peer, not the fastest few
            out.append((t, sum(latest.values()) / len(latest)))
    return out


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: time_to_target.py OUT_DIR [REFERENCE_RUN]")
    out = pathlib.Path(sys.argv[1])
    ref_name = sys.argv[2] if len(sys.argv) == 3 else "allreduce"
    runs = {p.parent.name: series(p.parent) for p in sorted(out.glob("*/events.jsonl"))}
    if ref_name not in runs or not runs[ref_name]:
        sys.exit(f"no loss windows for the reference run '{ref_name}' under {out}")
    target = runs[ref_name][-1][1]
    result = {"target_loss": target, "reference": ref_name, "runs": {}}
    for name, s in runs.items():
        hit = next((t for t, loss in s if loss <= target), None)
        result["runs"][name] = {"time_to_target_s": hit, "final_loss": s[-1][1] if s else None,
                                "last_window_s": s[-1][0] if s else None}
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

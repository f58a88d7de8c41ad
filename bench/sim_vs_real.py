#!/usr/bin/env python3
"""Round-by-round comparison of a real run and a simulation of the same scenario.

Usage: sim_vs_real.py OUT_DIR   (OUT_DIR/real: `murmur netem run`; OUT_DIR/sim: `murmur netem simulate
--objective model --per-round`). Both sides give, per peer and round, the round's mean train loss and
the consensus distance after its mix (real: the peers' log.jsonl "round" events; simulated: rounds.csv);
they are averaged over the peers per round and compared. Writes OUT_DIR/comparison.json.
"""
import csv
import json
import pathlib
import statistics
import sys


def real_rounds(run):
    by_round = {}
    for log in sorted(run.glob("peer-*/log.jsonl")):
        for line in log.read_text().splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            if e.get("event") == "round":
                by_round.setdefault(e["round"], []).append((e["loss"], e["consensus_distance"]))
    return {r: (statistics.mean(x[0] for x in v), statistics.mean(x[1] for x in v), len(v))
            for r, v in by_round.items()}


def sim_rounds(sim):
    by_round = {}
    with open(sim / "rounds.csv") as f:
        for row in csv.DictReader(f):
            by_round.setdefault(int(row["round"]), []).append((float(row["loss"]), float(row["link_distance"])))
    return {r: (statistics.mean(x[0] for x in v), statistics.mean(x[1] for x in v)) for r, v in by_round.items()}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    real, sim = real_rounds(out / "real"), sim_rounds(out / "sim")
    rows = []
    for r in sorted(set(real) & set(sim)):
        rl, rd, n = real[r]
        sl, sd = sim[r]
        rows.append({"round": r, "real_loss": rl, "sim_loss": sl, "loss_gap": (sl - rl) / rl,
                     "real_distance": rd, "sim_distance": sd, "peers": n})
    if not rows:
        sys.exit("no round appears in both the real run and the simulation")
    print("| round | real loss | simulated loss | gap | real consensus distance | simulated |")
    print("| --- | --- | --- | --- | --- | --- |")
    for x in rows:
        print(f"| {x['round']} | {x['real_loss']:.4f} | {x['sim_loss']:.4f} | {100 * x['loss_gap']:+.2f} % "
              f"| {x['real_distance']:.4f} | {x['sim_distance']:.4f} |")
    worst = max(abs(x["loss_gap"]) for x in rows)
    ratio = [x["sim_distance"] / x["real_distance"] for x in rows if x["real_distance"] > 0]
    print(f"largest loss gap {100 * worst:.2f} %; simulated/real consensus distance: median "
          f"{statistics.median(ratio):.3f}, range {min(ratio):.3f}..{max(ratio):.3f}")
    (out / "comparison.json").write_text(json.dumps({"rounds": rows, "largest_loss_gap": worst,
                                                     "distance_ratio_median": statistics.median(ratio)},
                                                    indent=1))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Table and plot of bench/algorithms.sh: one `murmur netem run` report per algorithm and codec.

Reads OUT/*/summary.json and OUT/*/rounds.csv; writes OUT/results.json, OUT/results.md and
OUT/loss_vs_bytes.png (gnuplot), and prints the table. Ratios are against the allreduce run.
"""
import csv
import json
import math
import pathlib
import subprocess
import sys


def mean_curve(rounds_csv):
    """(MB sent per peer, train loss) per round, averaged over the peers that logged that round.

    The train loss of a round is the mean over its H steps; validation runs only at the end."""
    by_round = {}
    with open(rounds_csv) as f:
        for row in csv.DictReader(f):
            try:
                r, mb, val = int(row["round"]), float(row["bytes_sent"]) / 1e6, float(row["loss"])
            except (KeyError, ValueError):
                continue
            if math.isnan(val):
                continue
            by_round.setdefault(r, []).append((mb, val))
    return [(sum(p[0] for p in v) / len(v), sum(p[1] for p in v) / len(v)) for _, v in sorted(by_round.items())]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: algorithms_report.py OUT_DIR")
    out = pathlib.Path(sys.argv[1])
    runs = []
    for summary in sorted(out.glob("*/summary.json")):
        s = json.loads(summary.read_text())
        peers = s["peers"] if isinstance(s["peers"], list) else list(s["peers"].values())
        mean = s["mean"]
        codec = peers[0].get("codec", "") if s["algo"] == "gossip" else ""
        runs.append({
            "run": summary.parent.name,
            "algo": s["algo"],
            "codec": codec,
            "peers": len(peers),
            "tokens_per_peer": sum(p.get("tokens", 0) for p in peers) / len(peers),
            "final_val_loss": mean.get("final_val_loss"),
            "final_train_loss": mean.get("final_train_loss"),
            "mb_sent_per_peer": mean["bytes_sent"] / 1e6,
            "wait_fraction": mean["wait_s"] / s["wall_s"] if s["wall_s"] > 0 else 0.0,
            "wall_s": s["wall_s"],
            "ending": s["ending"],
            "curve": mean_curve(summary.parent / "rounds.csv"),
        })
    if not runs:
        sys.exit(f"no */summary.json under {out}")
    ref = next((r for r in runs if r["algo"] == "allreduce"), None)
    for r in runs:
        r["bytes_vs_allreduce"] = r["mb_sent_per_peer"] / ref["mb_sent_per_peer"] if ref and ref["mb_sent_per_peer"] else None

    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    lines = ["| run | algo | codec | tokens/peer | val loss | train loss | MB sent/peer | bytes vs allreduce | wait | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        lines.append(f"| {r['run']} | {r['algo']} | {r['codec'] or '-'} | {r['tokens_per_peer']:.0f} | "
                     f"{fmt(r['final_val_loss'], '.4f')} | {fmt(r['final_train_loss'], '.4f')} | "
                     f"{r['mb_sent_per_peer']:.1f} | {fmt(r['bytes_vs_allreduce'], '.4f')} | "
                     f"{100 * r['wait_fraction']:.1f} % | {r['wall_s']:.0f} |")
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps(runs, indent=2) + "\n")
    print(table)

    gp = ["set terminal pngcairo size 900,560", f"set output '{out / 'loss_vs_bytes.png'}'",
          "set logscale x", "set grid", "set key top right",
          "set xlabel 'MB sent per peer (log scale)'", "set ylabel 'train loss of the round (nats/byte)'",
          "set title 'equal tokens per peer: loss against bytes sent' noenhanced"]
    plots = []
    for i, r in enumerate(runs):
        pts = [(mb, v) for mb, v in r["curve"] if mb > 0]
        if not pts:
            continue
        gp.append(f"$d{i} << EOD")
        gp += [f"{mb} {v}" for mb, v in pts]
        gp.append("EOD")
        plots.append(f"$d{i} using 1:2 with linespoints title '{r['run']}'")
    if plots:
        gp.append("plot " + ", ".join(plots))
        script = out / "loss_vs_bytes.gp"
        script.write_text("\n".join(gp) + "\n")
        try:
            subprocess.run(["gnuplot"], input=script.read_text(), text=True, check=True)
            print(f"plot: {out / 'loss_vs_bytes.png'}")
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"no plot: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()

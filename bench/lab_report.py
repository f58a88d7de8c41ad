#!/usr/bin/env python3
"""Plots of `murmur netem lab` (OUT/results.json): loss against tokens (every run), the gap to allreduce
against run length, and loss against bytes sent per peer. Writes OUT/loss_vs_tokens.png,
OUT/gap_vs_length.png and OUT/loss_vs_bytes.png with gnuplot."""
import json
import pathlib
import subprocess
import sys


def gnuplot(out, name, lines):
    script = out / (name + ".gp")
    script.write_text("\n".join(lines) + "\n")
    try:
        subprocess.run(["gnuplot"], input=script.read_text(), text=True, check=True)
        print(f"plot: {out / (name + '.png')}")
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"no plot {name}: {e}", file=sys.stderr)


def block(i, rows):
    return [f"$d{i} << EOD"] + [" ".join(str(v) for v in r) for r in rows] + ["EOD"]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: lab_report.py OUT_DIR")
    out = pathlib.Path(sys.argv[1])
    res = json.loads((out / "results.json").read_text())
    runs = res["runs"]
    title = f"{res['scenario']}: {res['peers']} peers, {res['model']}, H = {res['inner_steps']}"
    head = ["set terminal pngcairo size 960,600", "set grid", "set key top right noenhanced",
            f"set title '{title}' noenhanced"]

    # Loss against tokens per peer: every run's evaluations.
    lines = head + [f"set output '{out / 'loss_vs_tokens.png'}'", "set logscale x",
                    "set xlabel 'tokens per peer'", "set ylabel 'validation loss, mean of peers (nats/token)'"]
    plots = []
    for i, r in enumerate(runs):
        lines += block(i, [(p["tokens_per_peer"], p["loss"]) for p in r["points"]])
        plots.append(f"$d{i} using 1:2 with linespoints title '{r['name']} x{r['length']}'")
    gnuplot(out, "loss_vs_tokens", lines + ["plot " + ", ".join(plots)])

    # Gap to allreduce against run length.
    ref = {r["length"]: r["val_loss"] for r in runs if r["algo"] == "allreduce"}
    names = sorted({r["name"] for r in runs if r["algo"] != "allreduce"})
    lines = head + [f"set output '{out / 'gap_vs_length.png'}'", "set logscale x",
                    "set xlabel 'tokens per peer'", "set ylabel 'val loss above allreduce (%)'"]
    plots = []
    for i, n in enumerate(names):
        pts = sorted((r["tokens_per_peer"], 100 * (r["val_loss"] - ref[r["length"]]) / ref[r["length"]])
                     for r in runs if r["name"] == n and r["length"] in ref)
        if pts:
            lines += block(i, pts)
            plots.append(f"$d{i} using 1:2 with linespoints title '{n}'")
    if plots:
        gnuplot(out, "gap_vs_length", lines + ["plot " + ", ".join(plots)])

    # Loss against bytes per peer: the final point of every run (no bytes: local, left out).
    lines = head + [f"set output '{out / 'loss_vs_bytes.png'}'", "set logscale x",
                    "set xlabel 'MB sent per peer'", "set ylabel 'final validation loss (nats/token)'"]
    plots = []
    for i, n in enumerate(sorted({r["name"] for r in runs})):
        pts = sorted((r["bytes_per_peer"] / 1e6, r["val_loss"]) for r in runs if r["name"] == n and r["bytes_per_peer"] > 0)
        if pts:
            lines += block(i, pts)
            plots.append(f"$d{i} using 1:2 with linespoints title '{n}'")
    if plots:
        gnuplot(out, "loss_vs_bytes", lines + ["plot " + ", ".join(plots)])


if __name__ == "__main__":
    main()

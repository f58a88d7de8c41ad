#!/usr/bin/env python3
"""Plots a Murmur run's log.jsonl (train and validation loss vs step and vs
wall time) to a PNG with gnuplot, and prints the curve as a Markdown table.

  scripts/plot_log.py RUN_DIR [--out curve.png] [--baseline 3.07]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--out", help="PNG path (default RUN/curve.png)")
    ap.add_argument("--baseline", type=float, help="draw a horizontal line, e.g. the unigram loss")
    a = ap.parse_args()
    rows = []
    with open(os.path.join(a.run, "log.jsonl")) as f:
        for line in f:
            e = json.loads(line)
            if e.get("event") == "step":
                rows.append(e)
    if not rows:
        sys.exit(f"{a.run}/log.jsonl has no step events")
    t0 = rows[0]["time"] - rows[0]["ms_per_step"] / 1e3
    out = a.out or os.path.join(a.run, "curve.png")
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as tsv:
        for e in rows:
            tsv.write(f"{e['step']}\t{e['time'] - t0:.1f}\t{e['loss']}\t{e.get('val_loss', 'NaN')}\n")
    baseline = f", {a.baseline} with lines dt 2 lc rgb 'gray' title 'unigram baseline'" if a.baseline else ""
    script = f"""
set terminal pngcairo size 900,500
set output '{out}'
set xlabel 'wall time (s)'
set ylabel 'loss (nats/token)'
set grid
set datafile missing 'NaN'
plot '{tsv.name}' using 2:3 with lines title 'train', \
     '{tsv.name}' using 2:4 with linespoints pt 7 title 'validation'{baseline}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.unlink(tsv.name)
    print("| step | time (s) | train loss | val loss |\n| --- | --- | --- | --- |")
    for e in rows:
        if "val_loss" in e:
            print(f"| {e['step']} | {e['time'] - t0:.0f} | {e['loss']:.3f} | {e['val_loss']:.3f} |")
    print(f"\nplot: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

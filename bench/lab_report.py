#!/usr/bin/env python3
"""Plots of `murmur netem lab` (OUT/results.json): loss against tokens (every run), the gap to allreduce
against run length, and loss against bytes sent per peer. Writes OUT/loss_vs_tokens.png,
OUT/gap_vs_length.png and OUT/loss_vs_bytes.png with gnuplot.

--add DIR (repeatable) takes the runs of another lab of the same scenario and peer count that OUT lacks
(by algorithm name and length), e.g. baselines measured once; the merged table per length goes to
OUT/merged.md."""
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


def tables(runs, peers):
    """The lab's table per length (as results.md): gap to allreduce, share of the gain over local kept,
    bytes against allreduce's."""
    order = {"allreduce": 0, "diloco": 1, "gossip": 2, "local": 3}
    md = []
    for length in sorted({r["length"] for r in runs}):
        rs = sorted((r for r in runs if r["length"] == length), key=lambda r: (order[r["algo"]], r["name"]))
        ar = next((r for r in rs if r["algo"] == "allreduce"), None)
        local = next((r for r in rs if r["algo"] == "local"), None)
        md += [f"\n### x{length}: {rs[0]['tokens_per_peer']:.0f} tokens per peer, {peers} peers\n",
               "| algo | val loss (mean of peers) | of the mean model | gap to allreduce | gain kept | MB sent/peer "
               "| bytes vs allreduce | consensus |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rs:
            gap = f"{100 * (r['val_loss'] - ar['val_loss']) / ar['val_loss']:+.2f} %" if ar else "-"
            kept = (f"{100 * (local['val_loss'] - r['val_loss']) / (local['val_loss'] - ar['val_loss']):.0f} %"
                    if ar and local and local["val_loss"] != ar["val_loss"] else "-")
            ratio = (f"1/{ar['bytes_per_peer'] / r['bytes_per_peer']:.0f}"
                     if ar and r["bytes_per_peer"] > 0 else "-")
            md.append(f"| {r['name']} | {r['val_loss']:.4f} | {r['val_loss_of_mean']:.4f} | {gap} | {kept} | "
                      f"{r['bytes_per_peer'] / 1e6:.2f} | {ratio} | {r['consensus']:.2g} |")
    return "\n".join(md) + "\n"


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-") or len(args) % 2 != 1 or any(a != "--add" for a in args[1::2]):
        sys.exit("usage: lab_report.py OUT_DIR [--add DIR ...]")
    out = pathlib.Path(args[0])
    res = json.loads((out / "results.json").read_text())
    runs = res["runs"]
    if len(args) > 1:
        for extra in args[2::2]:
            other = json.loads((pathlib.Path(extra) / "results.json").read_text())
            if (other["scenario"], other["peers"]) != (res["scenario"], res["peers"]):
                sys.exit(f"{extra}: {other['scenario']} with {other['peers']} peers, not "
                         f"{res['scenario']} with {res['peers']}")
            have = {(r["name"], r["length"]) for r in runs}
            runs += [r for r in other["runs"] if (r["name"], r["length"]) not in have]
        (out / "merged.md").write_text(tables(runs, res["peers"]))
        print(f"table: {out / 'merged.md'}")
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

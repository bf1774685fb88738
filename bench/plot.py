#!/usr/bin/env python3
"""Plot of the passthrough comparison from bench/results/results.json (needs matplotlib).

usage: plot.py RESULTS_JSON OUT_PNG

Left: latency percentiles at the fixed rate (median over repetitions as a thick line, each
repetition as a thin one), x axis in "1 in N requests" so the tail spreads out. Right:
throughput at saturation.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

PERCENTILES = [("p50", 50.0), ("p75", 75.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99.9", 99.9), ("p99.99", 99.99)]
VARIANTS = [("direct", "client → sora-sim (direct)", "#4c72b0"), ("shim", "client → shim → sora-sim", "#dd8452"),
            ("bare", "client → bare hyper proxy → sora-sim", "#8172b3"), ("nginx", "client → nginx → sora-sim", "#55a868")]


def main(path, out):
    with open(path) as handle:
        results = json.load(handle)
    pt = results["scenarios"].get("passthrough")
    if not pt:
        sys.exit("no passthrough results to plot")
    raw = [r for r in results["raw"] if r.get("scenario") == "passthrough"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [2.2, 1]})

    rate = pt.get("rate", {})
    xs = [1.0 / (1.0 - q / 100.0) for _, q in PERCENTILES]
    for variant, label, colour in VARIANTS:
        for record in (r for r in raw if r["phase"] == "rate" and r["variant"] == variant):
            ys = [record["latency_ms"].get(key) for key, _ in PERCENTILES]
            left.plot(xs, ys, color=colour, alpha=0.25, linewidth=0.8)
        row = rate.get(variant)
        if row:
            ys = [row.get(f"latency_ms/{key}", {}).get("median") for key, _ in PERCENTILES]
            left.plot(xs, ys, color=colour, linewidth=2.2, marker="o", label=label)
    target = next(iter(rate.values()), {}).get("target_rate")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xticks(xs)
    left.set_xticklabels([key for key, _ in PERCENTILES])
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    left.yaxis.set_major_formatter(plain)
    left.yaxis.set_minor_formatter(plain)
    left.tick_params(axis="y", which="minor", labelsize=7)
    left.set_xlabel("percentile")
    left.set_ylabel("latency (ms, log scale)")
    title = "GetStatsReport latency at a fixed rate"
    if target:
        title += f" ({target:,.0f} req/s, open loop)"
    left.set_title(title)
    left.grid(True, which="both", alpha=0.3)
    left.legend(loc="upper left")

    sat = pt.get("saturation", {})
    names, values, lows, highs, colours = [], [], [], [], []
    for variant, _, colour in VARIANTS:
        row = sat.get(variant)
        if row and row["ok_rps"]["median"] is not None:
            names.append(variant)
            values.append(row["ok_rps"]["median"])
            lows.append(row["ok_rps"]["median"] - row["ok_rps"]["min"])
            highs.append(row["ok_rps"]["max"] - row["ok_rps"]["median"])
            colours.append(colour)
    right.bar(names, values, yerr=[lows, highs], color=colours, capsize=6)
    right.set_ylabel("requests/s")
    right.set_title("throughput at saturation (median, range)")
    right.grid(True, axis="y", alpha=0.3)

    meta = results.get("meta", {})
    machine = meta.get("machine", {})
    note = f"{machine.get('nproc')} CPUs, {machine.get('cpu')}; {meta.get('date')}; commit {meta.get('commit')}"
    if meta.get("quick"):
        note = "QUICK SMOKE RUN — " + note
    fig.suptitle(note, fontsize=8, y=0.01, va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

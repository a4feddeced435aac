#!/usr/bin/env python3
"""Speedup-against-M plots for a pipeline report.

Usage: plot_results.py RESULTS_DIR

Reads RESULTS_DIR/plots/plot_data.csv (written by `slidesparse report`: benchmark, dtype,
model, pattern, M, speedup, bound) and writes RESULTS_DIR/plots/<benchmark>_<dtype>.png:
one panel per model, one line per pattern, its bound L/(L-2) dashed in the same colour.
Exits 3 when matplotlib is not installed, so the report can say so.
"""
import csv
import os
import sys
from collections import defaultdict

MISSING_MATPLOTLIB = 3
TITLES = {"prefill": "Prefill throughput", "decode": "Decode throughput", "kernel": "Kernel GEMM"}


def pattern_rank(pattern):
    length = pattern.split("_")[-1]
    return 1000 if length == "inf" else int(length)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    plots = os.path.join(argv[1], "plots")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed for " + sys.executable, file=sys.stderr)
        return MISSING_MATPLOTLIB

    # (benchmark, dtype) -> model -> pattern -> [(M, speedup)], and each pattern's bound.
    series = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    bounds = {}
    with open(os.path.join(plots, "plot_data.csv"), newline="") as f:
        for row in csv.DictReader(f):
            key = (row["benchmark"], row["dtype"])
            series[key][row["model"]][row["pattern"]].append((int(row["M"]), float(row["speedup"])))
            bounds[row["pattern"]] = float(row["bound"])

    patterns = sorted(bounds, key=pattern_rank)
    colours = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(patterns)}
    for (benchmark, dtype), models in sorted(series.items()):
        names = sorted(models)
        fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 1.2, 3.8), sharey=True, squeeze=False)
        handles = {}
        for ax, model in zip(axes[0], names):
            all_ms = sorted({m for points in models[model].values() for m, _ in points})
            for pattern in sorted(models[model], key=pattern_rank):
                points = sorted(models[model][pattern])
                ms = [m for m, _ in points]
                (line,) = ax.plot(ms, [s for _, s in points], marker="o", color=colours[pattern], label=pattern)
                handles[pattern] = line
                ax.axhline(bounds[pattern], color=colours[pattern], linestyle="--", linewidth=0.8)
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_xscale("log", base=2)
            ax.set_xticks(all_ms)
            ax.set_xticklabels([str(m) for m in all_ms], rotation=45, fontsize="small")
            ax.minorticks_off()
            ax.set_title(model)
            ax.set_xlabel("M (tokens)" if benchmark != "decode" else "M (sequences)")
            ax.grid(True, alpha=0.3)
        axes[0][0].set_ylabel("speedup over dense")
        order = sorted(handles, key=pattern_rank)
        fig.legend([handles[p] for p in order], order, title="pattern\n(dashed: bound)", loc="center right",
                   fontsize="small")
        fig.suptitle(f"{TITLES.get(benchmark, benchmark)} speedup, {dtype.upper()}")
        fig.tight_layout(rect=(0, 0, 0.86, 1))
        path = os.path.join(plots, f"{benchmark}_{dtype}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

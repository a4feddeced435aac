#!/usr/bin/env python3
"""Speedup-against-M plots for a pipeline report.

Usage: plot_results.py RESULTS_DIR

Reads RESULTS_DIR/plots/plot_data.csv (written by `slidesparse report`: benchmark, dtype,
model, pattern, M, speedup, bound) and writes RESULTS_DIR/plots/<benchmark>_<dtype>.png:
one panel per model, one line per pattern, its bound L/(L-2) dashed in the same colour, dense
(1.0) as a black line, M on a log2 axis. A pattern ending in "+cutlass" (our CUTLASS GEMM: the
end-to-end benchmark's sparse-cutlass backend, the kernel benchmark's --sparse-backend cutlass
or both) is drawn dotted in its pattern's colour. Benchmarks: prefill, decode, kernel (the
GEMM), layer (the whole linear layer against the faster dense layer), kernel_cutlass (our
CUTLASS GEMM against the CUTLASS dense GEMM with the same epilogue).
Exits 3 when matplotlib is not installed, so the report can say so.
"""
import csv
import os
import sys
from collections import defaultdict

MISSING_MATPLOTLIB = 3
# benchmark -> (what is measured, the baseline its speedup is over)
TITLES = {
    "prefill": ("Prefill throughput", "dense"),
    "decode": ("Decode throughput", "dense"),
    "kernel": ("Kernel GEMM", "dense"),
    "layer": ("Whole linear layer", "the faster dense layer"),
    "kernel_cutlass": ("CUTLASS sparse GEMM", "CUTLASS dense GEMM (same epilogue)"),
}


CUTLASS = "+cutlass"
# The series after a pattern, as the report's tables name them (report_parts.cpp).
SERIES_LABELS = {"": "", CUTLASS: " CUTLASS", "+fallback": " + dense fallback",
                 CUTLASS + "+fallback": " CUTLASS + dense fallback", "+auto": " auto backend",
                 "+auto+fallback": " auto backend + dense fallback"}


def base_pattern(pattern):
    """'2_8+cutlass' -> '2_8': the series (CUTLASS, dense fallback, auto) follows a '+'."""
    return pattern.split("+", 1)[0]


def pattern_rank(pattern):
    length = base_pattern(pattern).split("_")[-1]
    return (1000 if length == "inf" else int(length), pattern[len(base_pattern(pattern)):])


def pattern_label(pattern, bound):
    """'6:8 (2_8), bound 1.33', as the report's tables name the patterns."""
    base = base_pattern(pattern)
    length = base.split("_")[-1]
    name = f"dense lifted ({base})" if length == "inf" else f"{int(length) - 2}:{length} ({base})"
    series = pattern[len(base):]
    name += SERIES_LABELS.get(series, " " + series)
    return f"{name}, bound {bound:.2f}"


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

    bases = sorted({base_pattern(p) for p in bounds}, key=pattern_rank)
    colours = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(bases)}
    for (benchmark, dtype), models in sorted(series.items()):
        names = sorted(models)
        fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.8), sharey=True, squeeze=False)
        handles = {}
        for ax, model in zip(axes[0], names):
            all_ms = sorted({m for points in models[model].values() for m, _ in points})
            for pattern in sorted(models[model], key=pattern_rank):
                points = sorted(models[model][pattern])
                ms = [m for m, _ in points]
                colour = colours[base_pattern(pattern)]
                series = pattern[len(base_pattern(pattern)):]
                style = {"": ("o", "-"), CUTLASS: ("s", ":")}.get(series, ("^", "-."))
                (line,) = ax.plot(ms, [s for _, s in points], marker=style[0],
                                  linestyle=style[1], color=colour)
                handles[pattern] = line
                ax.axhline(bounds[pattern], color=colour, linestyle="--", linewidth=0.8)
            handles["dense"] = ax.axhline(1.0, color="black", linewidth=1.0)
            if len(all_ms) == 1:  # one M: keep the point off the frame
                ax.set_xlim(all_ms[0] / 2, all_ms[0] * 2)
            else:
                ax.margins(x=0.08)
            ax.set_xscale("log", base=2)
            ax.set_xticks(all_ms)
            ax.set_xticklabels([str(m) for m in all_ms], rotation=45, fontsize="small")
            ax.minorticks_off()
            ax.set_title(model)
            ax.set_xlabel("M (tokens)" if benchmark != "decode" else "M (sequences)")
            ax.grid(True, alpha=0.3)
        axes[0][0].set_ylabel("speedup over dense")
        order = sorted((p for p in handles if p != "dense"), key=pattern_rank)
        what, baseline = TITLES.get(benchmark, (benchmark, "dense"))
        labels = [pattern_label(p, bounds[p]) for p in order] + [f"{baseline} = 1.0"]
        title = "pattern (dashed: its bound"
        title += "; dotted: our CUTLASS GEMM)" if any(p.endswith(CUTLASS) for p in order) else ")"
        fig.suptitle(f"{what} speedup over {baseline}, {dtype.upper()}")
        fig.tight_layout()
        # Outside the panels, right of them: the saved image grows to hold it.
        fig.legend([handles[p] for p in order] + [handles["dense"]], labels,
                   title=title, loc="center left", bbox_to_anchor=(1.0, 0.5),
                   fontsize="small")
        path = os.path.join(plots, f"{benchmark}_{dtype}.png")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        print(os.path.relpath(path, argv[1]))  # no absolute paths in a committed log
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

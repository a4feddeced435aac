#!/usr/bin/env python3
"""Summarizes a scripts/gpu_kernel_study.sh folder as Markdown: the clocks and power that
nvidia-smi sampled during `bench kernel`, and per GEMM kernel the Nsight Compute metrics
(duration, achieved SM clock, tensor-pipe utilisation, DRAM and shared-memory throughput).

Usage: summarize_gpu_study.py OUT_DIR   (reads nvidia_smi.csv and ncu_<pattern>.csv there)
"""
import csv
import glob
import os
import statistics
import sys

# nvidia-smi clocks_event_reasons bits (nvml's clocksEventReasons).
GPU_IDLE = 0x1
SW_POWER_CAP = 0x4
THERMAL = 0x20 | 0x40
HW_SLOWDOWN = 0x8 | 0x80


def number(text):
    """'1980 MHz' -> 1980.0; '[N/A]' -> None."""
    try:
        return float(text.strip().split()[0])
    except (ValueError, IndexError):
        return None


def summarize_smi(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("timestamp")]
    busy = []
    for r in rows:
        if len(r) < 6:
            continue
        try:
            reasons = int(r[5].strip(), 16)
        except ValueError:
            continue
        if reasons & GPU_IDLE:
            continue
        busy.append((number(r[1]), number(r[3]), number(r[4]), reasons))
    lines = ["## Clocks and power during `bench kernel` (nvidia-smi, every 100 ms)", ""]
    if not busy:
        lines.append(f"No busy samples in {len(rows)} ({os.path.basename(path)}).")
        return lines
    clocks = [b[0] for b in busy if b[0] is not None]
    power = [b[1] for b in busy if b[1] is not None]
    temps = [b[2] for b in busy if b[2] is not None]

    def share(mask):
        return 100.0 * sum(1 for b in busy if b[3] & mask) / len(busy)

    lines += [
        "| samples (busy / all) | SM clock median (min-max), MHz | power median (max), W | "
        "temperature max, C | power-capped | thermal | hardware slowdown |",
        "|---|---|---|---|---|---|---|",
        f"| {len(busy)} / {len(rows)} | {statistics.median(clocks):.0f} ({min(clocks):.0f}-"
        f"{max(clocks):.0f}) | {statistics.median(power):.0f} ({max(power):.0f}) | "
        f"{max(temps):.0f} | {share(SW_POWER_CAP):.1f}% | {share(THERMAL):.1f}% | "
        f"{share(HW_SLOWDOWN):.1f}% |",
        "",
        "Busy samples are those whose clock-event reasons do not include 'GPU idle'; the last "
        "three columns are the share of busy samples with that reason set.",
    ]
    return lines


def family(name):
    lowered = name.lower()
    if "cutlass" in lowered or "gemmuniversal" in lowered:
        return "CUTLASS sparse (ours)" if "sparse" in lowered else "CUTLASS dense (ours)"
    if "sparse" in lowered:
        return "cuSPARSELt"
    return "cuBLASLt"


def read_ncu(path):
    """{kernel id: {'name': ..., metric name: value}} from an `ncu --csv` log file."""
    with open(path, newline="", errors="replace") as f:
        lines = [line for line in f if line.startswith('"')]
    kernels = {}
    for r in csv.DictReader(lines):
        k = kernels.setdefault(r["ID"], {"name": r["Kernel Name"], "grid": r.get("Grid Size", "")})
        try:
            value = float(r["Metric Value"].replace(",", ""))
        except ValueError:
            continue
        k[r["Metric Name"]] = value * UNIT_SCALE.get(r["Metric Unit"].strip().lower(), 1.0)
    return kernels


# ncu scales units to the value (nsecond, usecond, ...): times to microseconds, rates to MHz.
UNIT_SCALE = {
    "nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6,
    "hz": 1e-6, "khz": 1e-3, "mhz": 1.0, "ghz": 1e3,
    "cycle/second": 1e-6, "cycle/usecond": 1.0, "cycle/nsecond": 1e3,
}


COLUMNS = [
    ("gpu__time_duration.sum", "time, us", 1),
    ("sm__cycles_elapsed.avg.per_second", "SM clock, MHz", 1),
    ("sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active", "tensor pipe, %", 1),
    ("sm__inst_executed_pipe_tensor_op_gmma.avg.pct_of_peak_sustained_active", "gmma issue, %", 1),
    ("sm__throughput.avg.pct_of_peak_sustained_elapsed", "SM throughput, %", 1),
    ("dram__throughput.avg.pct_of_peak_sustained_elapsed", "DRAM, %", 1),
    ("l1tex__data_pipe_lsu_wavefronts_mem_shared.sum.pct_of_peak_sustained_elapsed",
     "shared memory, %", 1),
]


def summarize_ncu(path):
    pattern = os.path.basename(path)[len("ncu_"):-len(".csv")]
    kernels = read_ncu(path)
    groups = {}
    for k in kernels.values():
        groups.setdefault((family(k["name"]), k["name"], k["grid"]), []).append(k)
    present = [c for c in COLUMNS if any(c[0] in k for k in kernels.values())]
    lines = [f"### Pattern {pattern}: {len(kernels)} profiled launches", ""]
    if not kernels:
        return lines + ["No kernel rows (see the ncu log beside the CSV).", ""]
    lines.append("| GEMM | launches | grid | " + " | ".join(c[1] for c in present) + " |")
    lines.append("|---|---|---|" + "---|" * len(present))
    for (fam, name, grid), ks in sorted(groups.items(), key=lambda g: (g[0][0], g[0][2])):
        cells = []
        for metric, _, scale in present:
            values = [k[metric] for k in ks if metric in k]
            cells.append(f"{statistics.median(values) * scale:.1f}" if values else "")
        lines.append(f"| {fam} | {len(ks)} | {grid} | " + " | ".join(cells) + " |")
    lines += ["", "Medians over the launches of each kernel (same name and grid)."]
    return lines + [""]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    out = []
    smi = os.path.join(folder, "nvidia_smi.csv")
    if os.path.exists(smi):
        out += summarize_smi(smi) + [""]
    ncu_files = sorted(glob.glob(os.path.join(folder, "ncu_*.csv")))
    if ncu_files:
        out += ["## Nsight Compute, per GEMM kernel (`--clock-control none`)", ""]
        for path in ncu_files:
            out += summarize_ncu(path)
    print("\n".join(out))


if __name__ == "__main__":
    main()

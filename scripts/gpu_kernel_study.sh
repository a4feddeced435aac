#!/usr/bin/env bash
# One device call for our sparse GEMM's measurements (docs/cutlass_kernel.md): `bench kernel`
# with cuSPARSELt, our CUTLASS kernel and the dense GEMMs in one run while nvidia-smi samples
# clocks and power, then Nsight Compute on one cell of each GEMM (tensor-pipe utilisation,
# achieved clock, DRAM throughput). Builds first unless build-gpu is already there.
#   STUDY_BENCH_ARGS   the benchmark's shape flags (default below)
#   STUDY_NCU_ARGS     the shape flags of the profiled cells (default: Qwen2.5-7B, FP8, M = 16384)
#   STUDY_NCU_PATTERNS the patterns profiled, one ncu run each (default "2_4 2_8")
#   STUDY_STAGES       "bench ncu" by default
#   STUDY_SPARSE_BACKEND  the benchmark's --sparse-backend (default both; all adds cutlass_lift)
# Results go to out/gpu_study, packed into $OUT/gpu_study.tgz when $OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
WORK=out/gpu_study
STAGES=${STUDY_STAGES:-bench ncu}
rm -rf "$WORK" && mkdir -p "$WORK"
pack() { [[ -n "${OUT:-}" ]] && tar czf "$OUT/gpu_study.tgz" -C "$WORK" . ; }
trap pack EXIT
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }

if [ ! -x build-gpu/slidesparse ]; then
  GPU_CHECK_STAGES="" bash scripts/gpu_check.sh > "$WORK/build.txt" 2>&1 || { tail -n 30 "$WORK/build.txt"; exit 1; }
  grep "build ok" "$WORK/build.txt"
else
  cmake --build build-gpu -j "$(nproc)" > "$WORK/build.txt" 2>&1 || { tail -n 30 "$WORK/build.txt"; exit 1; }
fi
exe=./build-gpu/slidesparse
{
  date -u +"date %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  $exe info
} > "$WORK/environment.txt" 2>&1
cat "$WORK/environment.txt"

if has_stage bench; then
  # Clocks and power every 100 ms: 2:4 kernels can reach the power limit and lose clock.
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active \
    --format=csv -lms 100 > "$WORK/nvidia_smi.csv" 2>&1 &
  sampler=$!
  start=$SECONDS
  # shellcheck disable=SC2086
  timeout "${BENCH_TIMEOUT:-300}" $exe bench kernel ${STUDY_BENCH_ARGS:---preset qwen2.5-7b,qwen2.5-14b \
    --dtype fp8,int8 --pattern 2_4,2_6,2_8,2_10 --M 64,512,4096,16384} --sparse-backend "${STUDY_SPARSE_BACKEND:-both}" \
    --out "$WORK/results" --tuning "$WORK/tuning.json" > "$WORK/bench_kernel.log" 2>&1
  echo "bench kernel exit $? in $((SECONDS - start)) s"
  kill "$sampler" 2>/dev/null
  tail -n 12 "$WORK/bench_kernel.log"
fi

if has_stage ncu; then
  start=$SECONDS
  # Tensor-pipe metrics differ between Nsight Compute versions: use those this one knows.
  ncu --query-metrics > "$WORK/ncu_metrics.txt" 2>&1
  # An unknown metric fails the whole run: keep those whose base name this ncu lists.
  metrics=""
  for m in gpu__time_duration.sum sm__cycles_elapsed.avg.per_second \
    dram__throughput.avg.pct_of_peak_sustained_elapsed sm__throughput.avg.pct_of_peak_sustained_elapsed \
    l1tex__data_pipe_lsu_wavefronts_mem_shared.sum.pct_of_peak_sustained_elapsed \
    sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active \
    sm__inst_executed_pipe_tensor_op_gmma.avg.pct_of_peak_sustained_active; do
    grep -q "^${m%%.*} " "$WORK/ncu_metrics.txt" && metrics+=${metrics:+,}$m
  done
  echo "ncu metrics: $metrics"
  # Real clocks (no locking), so the utilisation is that of the benchmark's conditions; one
  # file per pattern, so each kernel row belongs to one pattern.
  for pattern in ${STUDY_NCU_PATTERNS:-2_4 2_8}; do
    # shellcheck disable=SC2086
    timeout "${NCU_TIMEOUT:-100}" ncu --profile-from-start off --clock-control none --metrics "$metrics" \
      --csv --print-kernel-base mangled --log-file "$WORK/ncu_$pattern.csv" --kernel-name regex:'gemm|Gemm|nvjet|xmma|cutlass|device_kernel' \
      $exe bench kernel ${STUDY_NCU_ARGS:---preset qwen2.5-7b --dtype fp8 --M 16384} --pattern "$pattern" \
      --sparse-backend both --reps 3 --out "$WORK/ncu_results_$pattern" > "$WORK/ncu_$pattern.log" 2>&1
    echo "ncu $pattern exit $? after $((SECONDS - start)) s, $(grep -c '"gpu__time_duration.sum"' "$WORK/ncu_$pattern.csv") kernel rows"
    tail -n 2 "$WORK/ncu_$pattern.log"
  done
  python3 scripts/summarize_gpu_study.py "$WORK" | tee "$WORK/summary.md"
fi

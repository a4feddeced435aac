#!/bin/sh
# A stand-in for the `slidesparse` command in the pipeline tests: fast, and steered by
# files in the folder it is run from ($FAKE): has_info, has_e2e, info.txt, crash_m,
# sticky_m, crash_tune, slow_tune, slow_kernel, fail_convert, crash_backend (with crash_m: the
# end-to-end backend label that crashes at that M). Every call is logged.
ulimit -c 0
D="$FAKE"
echo "$*" >> "$D/calls.log"
for a in "$@"; do
  if [ "$a" = "--help" ]; then
    # Like CLI11: a missing subcommand gets the top-level help, still with exit code 0.
    if { [ "$1 $2" = "bench e2e" ] && [ ! -e "$D/has_e2e" ]; } || { [ "$1" = info ] && [ ! -e "$D/has_info" ]; }; then
      echo "Usage: slidesparse [OPTIONS] SUBCOMMAND"
    else
      echo "Usage: slidesparse ${*%--help}[OPTIONS]"
    fi
    exit 0
  fi
done
cmd="$1"; shift
case "$cmd" in
  info)
    if [ -e "$D/info.txt" ]; then cat "$D/info.txt"; exit 0; fi
    echo "slidesparse: error: no CUDA device: cudaGetDeviceCount: no CUDA-capable device is detected" >&2
    exit 1;;
  make-model)
    for a in "$@"; do out="$a"; done
    mkdir -p "$out" && echo '{}' > "$out/config.json"
    exit 0;;
  convert)
    if [ -e "$D/fail_convert" ]; then
      echo "slidesparse: error: cannot open $1/model.safetensors: No such file or directory" >&2
      exit 1
    fi
    mkdir -p "$2"
    exit 0;;
  verify)
    [ -d "$1" ] || { echo "slidesparse: error: cannot open $1" >&2; exit 1; }
    exit 0;;
esac
[ "$cmd" = bench ] && { sub="$1"; shift; }
[ "$cmd" = bench ] && [ "$sub" = e2e ] && { model="$1"; shift; }
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) model="$2"; shift 2;;
    --pattern) patterns="$2"; shift 2;;
    --M) ms="$2"; shift 2;;
    --out) out="$2"; shift 2;;
    --dtype) dtype="$2"; shift 2;;
    --backend) backend="$2"; shift 2;;
    --stage) stage="$2"; shift 2;;
    --sparse-backend) sparse_backend="$2"; shift 2;;
    --dense-gemm) dense_gemm="$2"; shift 2;;
    --dense-fallback) fallback=1; shift;;
    *) shift;;
  esac
done
# The result folder of this dtype, as `info` names it.
F=$(sed -n "s|^$dtype .*results: \(.*\)/\$|\1|p" "$D/info.txt" 2>/dev/null)
crash_m=$(cat "$D/crash_m" 2>/dev/null)
sticky_m=$(cat "$D/sticky_m" 2>/dev/null)
case "$cmd" in
  tune)
    [ -e "$D/crash_tune" ] && kill -SEGV $$
    [ -e "$D/slow_tune" ] && sleep 30
    exit 0;;
  bench)
    mkdir -p "$out/$F"
    if [ "$sub" = kernel ]; then
      [ -e "$D/slow_kernel" ] && sleep 30
      csv="$out/$F/kernel_bench.csv"
      echo "model,layer,N,K,M,dtype,pattern,pattern_paper,gamma,bound,dense_gemm_us,sparse_gemm_us,speedup_gemm,efficiency_bound,efficiency_vs_2_4,dense_layer_us,sparse_layer_us,speedup_layer,layer_overhead,quant_lift_us,quant_lift_GBps,quant_lift_vs_copy,copy_GBps,dense_algo,sparse_algo,dense_candidates,sparse_candidates,status,error" > "$csv"
      poisoned=""
      for p in $(echo "$patterns" | tr , ' '); do
        for m in $(echo "$ms" | tr , ' '); do
          [ "$m" = "$crash_m" ] && kill -SEGV $$
          [ "$m" = "$sticky_m" ] && poisoned=1
          for layer in qkv o; do
            if [ -n "$poisoned" ]; then
              echo "$model,$layer,1024,1024,$m,$dtype,$p,$p,1.5,1.333,100,,,,,,,,,,,,,,,,,failed,cuSPARSELt: CUDA error: an illegal memory access was encountered" >> "$csv"
            else
              echo "$model,$layer,1024,1024,$m,$dtype,$p,$p,1.5,1.333,100,80,1.25,0.94,,120,100,1.2,0.25,10,1500,0.5,3000,a,b,3,3,passed," >> "$csv"
            fi
          done
        done
      done
    else
      # The backend label and the usage errors of the real command.
      if [ "$backend" = dense ]; then
        if [ -n "$fallback" ] || [ -n "$sparse_backend" ]; then
          echo "slidesparse: error: --dense-fallback and --sparse-backend go with --backend sparse" >&2
          exit 1
        fi
        label=dense; [ -n "$dense_gemm" ] && label="dense-$dense_gemm"
      else
        [ -n "$dense_gemm" ] && { echo "slidesparse: error: --dense-gemm goes with --backend dense" >&2; exit 1; }
        label=sparse
        [ -n "$sparse_backend" ] && [ "$sparse_backend" != cusparselt ] && label="sparse-$sparse_backend"
        [ -n "$fallback" ] && label="$label-fallback"
      fi
      csv="$out/$F/e2e_$stage.csv"
      echo "model,stage,backend,pattern,dtype,M,requests_per_s,tokens_per_s,gemm_ms,attention_ms,other_ms,status,error" > "$csv"
      pattern="$patterns"; [ "$backend" = dense ] && pattern=dense
      for m in $(echo "$ms" | tr , ' '); do
        [ "$m" = "$crash_m" ] && [ "$label" = "$(cat "$D/crash_backend" 2>/dev/null)" ] && kill -SEGV $$
        echo "$(basename "$model"),$stage,$label,$pattern,$dtype,$m,2,1000,1,1,1,passed," >> "$csv"
      done
    fi
    exit 0;;
esac
echo "slidesparse: error: unknown command $cmd" >&2
exit 1

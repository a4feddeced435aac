#!/usr/bin/env bash
# One device call for the pipeline (issue: the benchmark pipeline and its report): builds,
# runs plans/short.toml interrupted once (SIGINT after PIPELINE_INTERRUPT_AFTER seconds) and
# then with --resume, runs plans/inject-failure.toml, and projects plans/default.toml with
# --estimate from the measured cases. Everything lands in out/gpu_pipeline (packed into
# $OUT/gpu_pipeline.tgz when the device tool's $OUT is set).
set -uo pipefail
cd "$(dirname "$0")/.."
WORK=out/gpu_pipeline
rm -rf "$WORK" && mkdir -p "$WORK"
# The made and converted models (gigabytes) stay behind: only results, status, logs and reports.
pack() {
  [[ -n "${OUT:-}" ]] && tar czf "$OUT/gpu_pipeline.tgz" -C "$WORK" --exclude='*/models' \
    --exclude='*.safetensors' --exclude='build-gpu' .
}
trap pack EXIT
GPU_CHECK_STAGES="" bash scripts/gpu_check.sh > "$WORK/build.txt" 2>&1 || { tail -n 30 "$WORK/build.txt"; exit 1; }
grep "build ok" "$WORK/build.txt"
exe=./build-gpu/slidesparse

start=$SECONDS
timeout -s INT "${PIPELINE_INTERRUPT_AFTER:-60}" $exe pipeline plans/short.toml --out "$WORK/short" \
  > "$WORK/short_first.log" 2>&1
echo "short plan, first attempt: exit $? after $((SECONDS - start)) s (SIGINT on purpose)"
tail -n 5 "$WORK/short_first.log"
start=$SECONDS
$exe pipeline plans/short.toml --out "$WORK/short" --resume > "$WORK/short_resume.log" 2>&1
echo "short plan, --resume: exit $? after $((SECONDS - start)) s"
tail -n 25 "$WORK/short_resume.log"

start=$SECONDS
$exe pipeline plans/inject-failure.toml --out "$WORK/inject" > "$WORK/inject.log" 2>&1
echo "inject-failure plan: exit $? after $((SECONDS - start)) s"
tail -n 12 "$WORK/inject.log"

$exe pipeline --estimate plans/default.toml --from "$WORK/short" > "$WORK/estimate.txt" 2>&1
echo "estimate exit $?"
cat "$WORK/estimate.txt"

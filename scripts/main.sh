#!/usr/bin/env bash
# The main job: sets up, builds, then
#  - everywhere: makes a small synthetic Llama-3.2-1B-shaped model, converts it to 6:8 INT8,
#    verifies it, and shows that the CPU reference of the sparse layer equals the dense one;
#  - runs a short benchmark pipeline (plans/demo-cpu.toml without a GPU, plans/short.toml
#    with one) and writes its report;
#  - with a GPU: also runs the GPU tests and a short kernel benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BIN=${BUILD_DIR:-build}/slidesparse
OUT=${OUT_DIR:-out/demo}
mkdir -p "$OUT"
"$BIN" make-model --preset llama3.2-1b --layers 2 "$OUT/llama3.2-1b-2l" --force
"$BIN" convert "$OUT/llama3.2-1b-2l" "$OUT/llama3.2-1b-2l-6_8-int8" --pattern 6:8 --dtype int8 --force
"$BIN" verify "$OUT/llama3.2-1b-2l-6_8-int8"
"$BIN" demo "$OUT/llama3.2-1b-2l" "$OUT/llama3.2-1b-2l-6_8-int8"
PLAN=plans/demo-cpu.toml
if nvidia-smi >/dev/null 2>&1; then PLAN=plans/short.toml; fi
PIPELINE_OUT="$OUT/pipeline-$(basename "$PLAN" .toml)"
RESUME=""
if [ -f "$PIPELINE_OUT/status.json" ]; then RESUME="--resume"; fi
"$BIN" pipeline "$PLAN" --out "$PIPELINE_OUT" $RESUME || echo "pipeline: some jobs failed, see $PIPELINE_OUT/report.md"
if nvidia-smi >/dev/null 2>&1; then
  "$BIN" info
  (cd "${BUILD_DIR:-build}" && ctest -L gpu --output-on-failure)
  "$BIN" bench kernel --preset qwen2.5-7b --dtype fp8,int8 --pattern 2_4,2_6,2_8,2_10 --M 256,4096,16384 \
    --out "$OUT/results"
fi

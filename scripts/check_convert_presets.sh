#!/usr/bin/env bash
# Every model preset through the converter: make-model (one decoder layer) → convert to each
# dtype → verify → demo (CPU reference: the sparse layers of layer 0 equal the dense ones bit
# for bit). The CLI tests run two presets; this runs all of them (a few GB of disk each).
#   BUILD_DIR=build WORK=/tmp/slidesparse-presets PATTERN=6:8 bash scripts/check_convert_presets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}/slidesparse
WORK=${WORK:-/tmp/slidesparse-presets}
PATTERN=${PATTERN:-6:8}
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
for preset in llama3.2-1b llama3.2-3b qwen2.5-7b qwen2.5-14b bitnet-2b; do
  model="$WORK/$preset"
  "$BIN" make-model --preset "$preset" --layers 1 --force "$model"
  for dtype in int8 fp8 bf16; do
    converted="$WORK/$preset-$dtype"
    "$BIN" convert "$model" "$converted" --pattern "$PATTERN" --dtype "$dtype"
    "$BIN" verify "$converted"
    "$BIN" demo "$model" "$converted"
    rm -rf "$converted"
  done
  rm -rf "$model"
done
echo "all presets: make-model → convert (int8, fp8, bf16) → verify → demo passed"

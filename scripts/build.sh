#!/usr/bin/env bash
# Configures and builds slidesparse into build/ (or $BUILD_DIR) for one CUDA architecture.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="$SLIDESPARSE_CUDA_ARCH" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"

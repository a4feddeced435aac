#!/usr/bin/env bash
# Sets everything up, builds, and runs every test. GPU tests (label gpu) skip with a
# message on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 1200

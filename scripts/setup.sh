#!/usr/bin/env bash
# Installs everything slidesparse needs on a fresh Debian/Ubuntu machine (idempotent, fast
# when everything is already there): build tools and libraries from apt, cuSPARSELt from pip
# when the CUDA toolkit is present, and the cuDNN C++ frontend headers for the prefill attention.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

APT_PACKAGES=(cmake ninja-build g++ make nlohmann-json3-dev libcli11-dev libfmt-dev
              libtomlplusplus-dev libgtest-dev libgmock-dev googletest python3-pip)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
if command -v nvcc >/dev/null 2>&1; then
  if ! python3 - <<'PY' 2>/dev/null
import glob, site, sys
dirs = site.getsitepackages() + [site.getusersitepackages()]
sys.exit(0 if any(glob.glob(d + "/nvidia/*/include/cusparseLt.h") for d in dirs) else 1)
PY
  then
    echo "setup: installing cuSPARSELt (nvidia-cusparselt-cu13)"
    python3 -m pip install -q --disable-pip-version-check nvidia-cusparselt-cu13
  fi
  # CUTLASS headers for our sm_90a sparse GEMM (CMake asks python where they are).
  if ! python3 -c 'import cutlass_library' >/dev/null 2>&1; then
    echo "setup: installing the CUTLASS headers (nvidia-cutlass)"
    python3 -m pip install -q --disable-pip-version-check nvidia-cutlass==4.2.0 ||
      echo "setup: nvidia-cutlass not installed; the CUTLASS sparse GEMM will not be built"
  fi
  # The header-only cuDNN C++ frontend for the fused prefill attention (CMake asks python where
  # site-packages is). --no-deps: only its C++ headers are used, not its Python kernels' large
  # dependencies. cuDNN itself comes from the CUDA toolkit or the Python environment.
  if ! python3 - <<'PY' 2>/dev/null
import os, site, sys
dirs = site.getsitepackages() + [site.getusersitepackages()]
sys.exit(0 if any(os.path.exists(d + "/include/cudnn_frontend.h") for d in dirs) else 1)
PY
  then
    echo "setup: installing the cuDNN C++ frontend headers (nvidia-cudnn-frontend)"
    python3 -m pip install -q --disable-pip-version-check --no-deps nvidia-cudnn-frontend==1.32.0 ||
      echo "setup: nvidia-cudnn-frontend not installed; prefill attention uses the runner's own kernel"
  fi
fi
# Plots in the pipeline's report (Python glue only; the report says so when it is missing).
if ! python3 -c 'import matplotlib' >/dev/null 2>&1; then
  echo "setup: installing matplotlib (report plots)"
  python3 -m pip install -q --disable-pip-version-check matplotlib || echo "setup: matplotlib not installed; reports will carry no plots"
fi
echo "setup: ok"

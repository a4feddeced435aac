#!/usr/bin/env bash
# Copies the header-only dependencies and GoogleTest's sources from this machine's Debian
# packages into .deps/ (ignored by git) so a build works on a machine without a network,
# such as the lent GPU machine. Nothing here is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .deps && mkdir -p .deps/include
cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/fmt /usr/include/toml++ .deps/include/
cp -r /usr/src/googletest .deps/googletest
# The CUTLASS headers of the pip package nvidia-cutlass, when installed, for the CUTLASS sparse
# GEMM (CMake accepts this include/ + util_include/ layout).
if cutlass_source=$(python3 -c 'import cutlass_library, os; print(os.path.dirname(cutlass_library.__file__))' 2>/dev/null)/source &&
  [ -f "$cutlass_source/include/cutlass/cutlass.h" ]; then
  rm -rf third_party_headers/cutlass && mkdir -p third_party_headers/cutlass
  cp -r "$cutlass_source/include" third_party_headers/cutlass/include
  cp -r "$cutlass_source/tools/util/include" third_party_headers/cutlass/util_include
  du -sh third_party_headers/cutlass
else
  echo "vendor_deps: nvidia-cutlass is not installed; the CUTLASS sparse GEMM will not be built"
fi
# The cuDNN C++ frontend headers of the pip package nvidia-cudnn-frontend, when installed, for the
# fused prefill attention (CMake looks in .deps/cudnn_frontend/include); cuDNN's library comes from
# the GPU machine's own Python environment.
if frontend_include=$(python3 - 2>/dev/null <<'PY'
import os, site
for d in site.getsitepackages() + [site.getusersitepackages()]:
    if os.path.exists(d + "/include/cudnn_frontend.h"):
        print(d + "/include")
        break
else:
    raise SystemExit(1)
PY
); then
  mkdir -p .deps/cudnn_frontend/include
  cp -r "$frontend_include"/cudnn_frontend* "$frontend_include"/cudnn_backend_base.h \
    .deps/cudnn_frontend/include/
else
  echo "vendor_deps: nvidia-cudnn-frontend is not installed; prefill attention will use the runner's own kernel"
fi
du -sh .deps

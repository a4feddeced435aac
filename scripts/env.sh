# Sourced by the scripts: puts the CUDA toolkit on PATH where it is installed but not on PATH,
# and picks the CUDA architecture to build (one, for speed) unless SLIDESPARSE_CUDA_ARCH is set.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
if [ -z "${SLIDESPARSE_CUDA_ARCH:-}" ]; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .' || true)
  case "$cc" in
    90|100|120) SLIDESPARSE_CUDA_ARCH="${cc}a" ;;
    "") SLIDESPARSE_CUDA_ARCH="90a" ;;   # no GPU: build (and check) the H100 target
    *) SLIDESPARSE_CUDA_ARCH="$cc" ;;
  esac
fi
export SLIDESPARSE_CUDA_ARCH

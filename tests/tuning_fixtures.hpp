// The tuning-database key of the lent H100 (driver 580, CUDA 13.0, cuBLASLt 13.1, cuSPARSELt
// 0.8.0), for the CPU tests of the tuning database and of the choices made from it.
#pragma once

#include "slidesparse/tuning_db.hpp"

namespace slidesparse::test {

inline TuningKey h100_key() {
  TuningKey key;
  key.gpu_name = "NVIDIA H100 80GB HBM3";
  key.cc_major = 9;
  key.cc_minor = 0;
  key.driver = 13000;
  key.cuda_runtime = 13000;
  key.cublaslt = 130100;
  key.cusparselt = 800;
  return key;
}

}  // namespace slidesparse::test

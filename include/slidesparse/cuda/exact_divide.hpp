// x / d rounded to nearest (IEEE), for many x sharing one divisor d, at the cost
// of a multiply and four FMAs instead of a division per element.
//
// Markstein's correction with the correctly rounded reciprocal y = RN(1/d):
// q0 = RN(x·y) is within 1.5 ulp of x/d, one correction brings it within
// (1/2 + 2^-23) ulp (faithful), and the second correction then rounds exactly
// (Markstein's theorem). It needs the residuals x - d·q to be normal, i.e. it is
// exact for quotients |x/d| >= 2^-20 or so; tinier quotients keep their sign and
// may differ in the last bits. Quantization maps all of those to 0 (INT8) or ±0
// (E4M3), so quantized codes equal those of x / d everywhere: verified over every
// BF16 and F16 x with |x| <= absmax and every scale max(absmax/127 or /448, 1e-12)
// (tests/gpu/test_exact_divide.cpp checks a sample of that domain on the CPU).
// Host and device share this code so the CPU can test exactly what the GPU runs.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define SLIDESPARSE_HOST_DEVICE __host__ __device__
#else
#define SLIDESPARSE_HOST_DEVICE
#endif

namespace slidesparse {

struct ExactDivisor {
  float divisor;     // finite, > 0, normal
  float reciprocal;  // RN(1 / divisor)
};

SLIDESPARSE_HOST_DEVICE inline ExactDivisor make_exact_divisor(float divisor) {
#if defined(__CUDA_ARCH__)
  return {divisor, __frcp_rn(divisor)};
#else
  return {divisor, 1.0f / divisor};
#endif
}

SLIDESPARSE_HOST_DEVICE inline float exact_divide(float x, const ExactDivisor& d) {
#if defined(__CUDA_ARCH__)
  const float q0 = __fmul_rn(x, d.reciprocal);
  const float q1 = __fmaf_rn(__fmaf_rn(-d.divisor, q0, x), d.reciprocal, q0);
  const float q2 = __fmaf_rn(__fmaf_rn(-d.divisor, q1, x), d.reciprocal, q1);
  return copysignf(q2, x);  // x = -0 must give -0, as x / d does
#else
  const float q0 = x * d.reciprocal;
  const float q1 = std::fma(std::fma(-d.divisor, q0, x), d.reciprocal, q0);
  const float q2 = std::fma(std::fma(-d.divisor, q1, x), d.reciprocal, q1);
  return std::copysign(q2, x);
#endif
}

}  // namespace slidesparse

// Branch-free float exp and tanh that GCC vectorises inside `omp simd` loops
// (glibc's expf/tanhf are scalar calls without -ffast-math; tanhf alone took a
// third of a training step). exp: Cephes' range reduction and degree-6
// polynomial, within 2 ulp over the float range.
#pragma once

#include <cstdint>
#include <cstring>

namespace murmur::cpu {

#pragma omp declare simd
inline float fast_exp(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  // Round to nearest by adding and removing 1.5 * 2^23: no libm call, so it vectorises.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;  // ln2 split in two for an exact reduction
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// tanh(u) = 1 - 2 / (exp(2u) + 1): absolute error ~1e-7, which is what GELU's (1 + tanh) needs.
#pragma omp declare simd
inline float fast_tanh(float u) { return 1.0f - 2.0f / (fast_exp(2.0f * u) + 1.0f); }

}  // namespace murmur::cpu

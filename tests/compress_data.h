// Inputs for the codec tests: Gaussian vectors and a synthetic "model-delta-like"
// distribution (heavy tails, per-tensor scales over three decades, low-rank matrices,
// a zero tensor), plus the norms the bounds are stated in.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "compress/codec.h"

namespace murmur::compress::testing {

inline EncodeOptions seeded(uint64_t seed, std::span<const MatrixView> layout = {}) {
  EncodeOptions o;
  o.seed = seed;
  o.layout = layout;
  return o;
}

inline std::vector<float> gaussian(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = nd(rng);
  return x;
}

struct DeltaLike {
  std::vector<float> x;
  std::vector<MatrixView> layout;  // the matrices among the tensors (for PowerSGD)
};

// Tensors as in a small GPT: (rows, cols) matrices that are low-rank plus Student-t(3)
// noise, and vectors (biases, LayerNorm) of pure Student-t(3) values; each tensor has its
// own scale in [1e-4, 1e-1]; one vector is all zeros. Tensors start at multiples of 16.
inline DeltaLike delta_like(uint64_t seed, int layers = 2, uint32_t width = 96) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::chi_squared_distribution<float> chi(3.0f);
  std::uniform_real_distribution<float> logscale(-4.0f, -1.0f);
  auto student = [&] { return nd(rng) / std::sqrt(chi(rng) / 3.0f); };
  DeltaLike d;
  auto pad = [&] { d.x.resize((d.x.size() + 15) / 16 * 16, 0.0f); };
  auto vec = [&](size_t n, bool zero) {
    pad();
    const float s = std::pow(10.0f, logscale(rng));
    for (size_t i = 0; i < n; ++i) d.x.push_back(zero ? 0.0f : s * student());
  };
  auto mat = [&](uint32_t rows, uint32_t cols) {
    pad();
    d.layout.push_back({d.x.size(), rows, cols});
    const float s = std::pow(10.0f, logscale(rng));
    std::vector<float> u(rows * 2), v(cols * 2);
    for (float& a : u) a = nd(rng);
    for (float& a : v) a = nd(rng);
    for (uint32_t i = 0; i < rows; ++i) {
      for (uint32_t j = 0; j < cols; ++j) {
        const float low = u[2 * i] * v[2 * j] + 0.5f * u[2 * i + 1] * v[2 * j + 1];
        d.x.push_back(s * (low + 0.3f * student()));
      }
    }
  };
  mat(512, width);  // token embedding
  for (int l = 0; l < layers; ++l) {
    vec(width, l == 0);
    mat(width, 3 * width);
    vec(3 * width, false);
    mat(width, 4 * width);
    vec(4 * width, false);
  }
  vec(width + 5, false);  // odd length: exercises partial blocks
  return d;
}

inline double norm(std::span<const float> x) {
  double s = 0;
  for (float v : x) s += double(v) * v;
  return std::sqrt(s);
}

inline double diff_norm(std::span<const float> a, std::span<const float> b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(s);
}

}  // namespace murmur::compress::testing

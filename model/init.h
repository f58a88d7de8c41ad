// GPT-2 parameter initialisation, deterministic from a seed on every platform.
#pragma once

#include <cstdint>
#include <span>

#include "model/config.h"
#include "model/layout.h"

namespace murmur {

// N(0, 0.02) for embeddings and matrices, with the residual projections
// (attn.c_proj, mlp.c_proj) scaled by 1/sqrt(2 * n_layer) as in GPT-2; zero
// biases; LayerNorm weights 1. Padded vocabulary rows and alignment gaps stay 0.
void init_gpt2_params(std::span<float> params, const ParamLayout& layout, const ModelConfig& cfg,
                      uint64_t seed);

// A small counter-based generator (splitmix64): the same stream on every
// compiler and standard library, which std:: distributions do not guarantee.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal();                                                            // Box-Muller
  uint64_t state() const { return state_; }

 private:
  uint64_t state_;
};

}  // namespace murmur

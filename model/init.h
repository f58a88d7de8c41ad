// GPT-2 parameter initialisation, deterministic from a seed on every platform.
#pragma once

#include <cstdint>
#include <span>

#include "model/config.h"
#include "model/layout.h"
#include "model/rng.h"

namespace murmur {

// N(0, 0.02) for embeddings and matrices, with the residual projections
// (attn.c_proj, mlp.c_proj) scaled by 1/sqrt(2 * n_layer) as in GPT-2; zero
// biases; LayerNorm weights 1. Padded vocabulary rows and alignment gaps stay 0.
void init_gpt2_params(std::span<float> params, const ParamLayout& layout, const ModelConfig& cfg,
                      uint64_t seed);

}  // namespace murmur

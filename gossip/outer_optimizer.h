// The outer step of DiLoCo (Douillard et al., 2023) on a round's pseudo-gradient:
// Nesterov momentum over Δ = θ_start − θ' (θ' after the H inner steps).
//   m ← μ·m + Δ,   θ ← θ_start − η·(μ·m + Δ)
// η = 1, μ = 0 gives θ = θ' (plain local SGD). The default algorithm uses η = 0.7, μ = 0.9
// (docs/algorithm.md, "Parameters and defaults").
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace murmur::gossip {

// The step as a plain function over flat buffers: `theta` holds θ' on entry and
// the new θ on return; `momentum` is m, updated in place. All spans have one size
// (std::invalid_argument otherwise, and for a non-finite lr or momentum).
void outer_nesterov_step(std::span<const float> start, std::span<float> theta, std::span<float> momentum,
                         float lr, float mu);

// Owns m (zero at first). Threading: one thread at a time.
class OuterOptimizer {
 public:
  explicit OuterOptimizer(size_t n) : m_(n, 0.0f) {}
  void step(std::span<const float> start, std::span<float> theta, float lr, float mu) {
    outer_nesterov_step(start, theta, m_, lr, mu);
  }
  // For checkpoints (gossip/algorithm_state.h): the momentum, and its restore
  // (size must match, values finite; std::invalid_argument otherwise).
  std::span<const float> momentum() const { return m_; }
  void restore(std::span<const float> momentum);

 private:
  std::vector<float> m_;
};

}  // namespace murmur::gossip

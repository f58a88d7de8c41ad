#include "gossip/outer_optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "compress/parallel.h"

namespace murmur::gossip {

void outer_nesterov_step(std::span<const float> start, std::span<float> theta, std::span<float> momentum,
                         float lr, float mu) {
  if (start.size() != theta.size() || momentum.size() != theta.size())
    throw std::invalid_argument("outer step: start, theta and momentum sizes differ (" +
                                std::to_string(start.size()) + ", " + std::to_string(theta.size()) + ", " +
                                std::to_string(momentum.size()) + ")");
  if (!std::isfinite(lr) || !std::isfinite(mu))
    throw std::invalid_argument("outer step: lr or momentum not finite");
  const size_t n = theta.size();
  compress::parallel_for(n, [&](size_t i) {
    const float delta = start[i] - theta[i];
    const float m = mu * momentum[i] + delta;
    momentum[i] = m;
    // start − lr·(μm + Δ), written from θ' so that lr = 1, μ = 0 (plain local SGD) keeps θ' exactly.
    theta[i] += (1.0f - lr) * delta - lr * mu * m;
  });
}

void OuterOptimizer::restore(std::span<const float> momentum) {
  if (momentum.size() != m_.size())
    throw std::invalid_argument("outer momentum has " + std::to_string(momentum.size()) +
                                " elements, expected " + std::to_string(m_.size()));
  if (!std::all_of(momentum.begin(), momentum.end(), [](float x) { return std::isfinite(x); }))
    throw std::invalid_argument("outer momentum holds a non-finite value");
  std::copy(momentum.begin(), momentum.end(), m_.begin());
}

}  // namespace murmur::gossip

#include "netem/sim_objective.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model/rng.h"

namespace murmur::netem {

void validate(const QuadraticObjective& o) {
  auto fail = [](const std::string& what) { throw std::invalid_argument(what); };
  if (o.dim < 1 || o.dim > (size_t{1} << 24)) fail("dim must be within 1..16777216");
  if (!(o.heterogeneity >= 0 && o.heterogeneity <= 1e3)) fail("heterogeneity must be 0..1000");
  if (!(o.noise >= 0 && o.noise <= 1e3)) fail("noise must be 0..1000");
  if (!(o.lr > 0 && o.lr < 2)) fail("lr must be in (0, 2): the curvatures reach 1");
}

namespace {

class Quadratic final : public SimObjective {
 public:
  Quadratic(const QuadraticObjective& o, size_t peers, int inner_steps, uint64_t seed)
      : d_(o.dim), rng_(mix64(seed ^ 0x6e015e)) {  // not the simulator's own stream (seed ^ 0x51a7e5)
    curvature_.resize(d_);
    decay_.resize(d_);
    noise_sd_.resize(d_);
    for (size_t k = 0; k < d_; ++k) {
      curvature_[k] = d_ == 1 ? 1.0 : 0.1 + 0.9 * double(k) / double(d_ - 1);
      // H SGD steps on one coordinate in closed form: e ← (1−ηa)^H e + N(0, η²σ² Σ_t (1−ηa)^{2t}).
      const double r = 1.0 - o.lr * curvature_[k];
      decay_[k] = std::pow(r, inner_steps);
      const double geo = std::abs(1 - r * r) < 1e-12 ? double(inner_steps)
                                                     : (1 - std::pow(r * r, inner_steps)) / (1 - r * r);
      noise_sd_[k] = o.lr * o.noise * std::sqrt(geo);
    }
    SplitMix64 rng(mix64(seed ^ 0x0b1ec7));
    std::vector<double> common(d_);
    for (double& v : common) v = rng.normal();
    target_.assign(peers, std::vector<float>(d_));
    optimum_.assign(d_, 0.0);
    for (size_t i = 0; i < peers; ++i)
      for (size_t k = 0; k < d_; ++k) {
        target_[i][k] = static_cast<float>(common[k] + o.heterogeneity * rng.normal());
        optimum_[k] += target_[i][k] / double(peers);
      }
    initial_gap_ = std::max(gap(std::vector<float>(d_, 0.0f)), 1e-30);
  }

  size_t dim() const override { return d_; }
  std::vector<float> initial() override { return std::vector<float>(d_, 0.0f); }
  void local_steps(size_t peer, std::span<float> theta, uint64_t) override {
    // Two normals per draw: the noise is most of a 1,000-peer simulation's math.
    double pair[2];
    for (size_t k = 0; k < d_; ++k) {
      if (k % 2 == 0) rng_.normals(pair[0], pair[1]);
      const double b = target_[peer][k];
      theta[k] = static_cast<float>(b + decay_[k] * (theta[k] - b) + noise_sd_[k] * pair[k % 2]);
    }
  }
  void data_parallel_steps(std::span<float> theta, uint64_t) override {
    // The mean of the peers' gradients pulls to the optimum, with the noise of P draws averaged.
    const double sd = 1.0 / std::sqrt(double(target_.size()));
    double pair[2];
    for (size_t k = 0; k < d_; ++k) {
      if (k % 2 == 0) rng_.normals(pair[0], pair[1]);
      const double b = optimum_[k];
      theta[k] = static_cast<float>(b + decay_[k] * (theta[k] - b) + sd * noise_sd_[k] * pair[k % 2]);
    }
  }
  double peer_loss(size_t, std::span<const float> theta) override { return loss(theta); }
  double loss(std::span<const float> theta) override { return gap(theta) / initial_gap_; }
  std::string loss_name() const override { return "(f(x) - f*) / (f(x0) - f*)"; }

 private:
  double gap(std::span<const float> x) const {  // f(x) − f*: the f_i share their curvature
    double sum = 0;
    for (size_t k = 0; k < x.size(); ++k) {
      const double e = x[k] - optimum_[k];
      sum += 0.5 * curvature_[k] * e * e;
    }
    return sum;
  }

  size_t d_;
  SplitMix64 rng_;
  std::vector<double> curvature_, decay_, noise_sd_, optimum_;
  std::vector<std::vector<float>> target_;
  double initial_gap_ = 1;
};

}  // namespace

std::unique_ptr<SimObjective> make_quadratic(const QuadraticObjective& o, size_t peers, int inner_steps,
                                             uint64_t seed) {
  validate(o);
  return std::make_unique<Quadratic>(o, peers, inner_steps, seed);
}

}  // namespace murmur::netem

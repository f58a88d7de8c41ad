#include "netem/sim_objective.h"

#include <algorithm>
#include <cmath>
#include <map>
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
  Quadratic(const QuadraticObjective& o, size_t peers, uint64_t seed)
      : d_(o.dim),
        lr_(o.lr),
        noise_(o.noise),
        rng_(mix64(seed ^ 0x6e015e)) {  // not the simulator's own stream (seed ^ 0x51a7e5)
    curvature_.resize(d_);
    for (size_t k = 0; k < d_; ++k) curvature_[k] = d_ == 1 ? 1.0 : 0.1 + 0.9 * double(k) / double(d_ - 1);
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
  void local_steps(size_t peer, std::span<float> theta, int64_t, int64_t steps) override {
    const Steps& c = coefficients(steps);
    // Two normals per draw: the noise is most of a 1,000-peer simulation's math.
    double pair[2];
    for (size_t k = 0; k < d_; ++k) {
      if (k % 2 == 0) rng_.normals(pair[0], pair[1]);
      const double b = target_[peer][k];
      theta[k] = static_cast<float>(b + c.decay[k] * (theta[k] - b) + c.noise_sd[k] * pair[k % 2]);
    }
  }
  void data_parallel_steps(std::span<float> theta, int64_t, int64_t steps) override {
    const Steps& c = coefficients(steps);
    // The mean of the peers' gradients pulls to the optimum, with the noise of P draws averaged.
    const double sd = 1.0 / std::sqrt(double(target_.size()));
    double pair[2];
    for (size_t k = 0; k < d_; ++k) {
      if (k % 2 == 0) rng_.normals(pair[0], pair[1]);
      const double b = optimum_[k];
      theta[k] = static_cast<float>(b + c.decay[k] * (theta[k] - b) + sd * c.noise_sd[k] * pair[k % 2]);
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

  // `steps` SGD steps on one coordinate in closed form: e ← (1−ηa)^H e + N(0, η²σ² Σ_t (1−ηa)^{2t}).
  // A run has one or two round lengths (the warm-up's and H): computed once each.
  struct Steps {
    std::vector<double> decay, noise_sd;
  };
  const Steps& coefficients(int64_t steps) {
    auto [it, fresh] = steps_.try_emplace(steps);
    if (!fresh) return it->second;
    Steps& c = it->second;
    c.decay.resize(d_);
    c.noise_sd.resize(d_);
    for (size_t k = 0; k < d_; ++k) {
      const double r = 1.0 - lr_ * curvature_[k], h = double(steps);
      c.decay[k] = std::pow(r, h);
      const double geo = std::abs(1 - r * r) < 1e-12 ? h : (1 - std::pow(r * r, h)) / (1 - r * r);
      c.noise_sd[k] = lr_ * noise_ * std::sqrt(geo);
    }
    return c;
  }

  size_t d_;
  double lr_, noise_;
  SplitMix64 rng_;
  std::vector<double> curvature_, optimum_;
  std::map<int64_t, Steps> steps_;
  std::vector<std::vector<float>> target_;
  double initial_gap_ = 1;
};

}  // namespace

std::unique_ptr<SimObjective> make_quadratic(const QuadraticObjective& o, size_t peers, uint64_t seed) {
  validate(o);
  return std::make_unique<Quadratic>(o, peers, seed);
}

}  // namespace murmur::netem

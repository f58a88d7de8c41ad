// What the simulated peers of `murmur netem simulate` train (netem/simulator.h). The analytical
// quadratic below lets 1,000s of peers run in seconds; node/peer/sim_model.h plugs in the real language
// model (the same Trainer as `murmur node`), so a small scenario can be simulated and run for real and
// the two compared. Every call comes from the simulator's one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace murmur::netem {

class SimObjective {
 public:
  virtual ~SimObjective() = default;
  virtual size_t dim() const = 0;
  // θ at the start of a run: the same for every peer, as peers initialise from the run's seed.
  virtual std::vector<float> initial() = 0;
  // Peer `peer`'s `steps` local steps from step `first` of the run (a round: gossip::RoundSchedule), on
  // theta in place. `first` places them in the learning-rate schedule.
  virtual void local_steps(size_t peer, std::span<float> theta, int64_t first, int64_t steps) = 0;
  // The same steps taken by every peer in synchronous data parallelism (the `allreduce` baseline: each
  // step averages all peers' gradients, so all hold one θ), on theta in place.
  virtual void data_parallel_steps(std::span<float> theta, int64_t first, int64_t steps) = 0;
  // The loss reported for a peer (its state theta) and for the peers' mean model.
  virtual double peer_loss(size_t peer, std::span<const float> theta) = 0;
  virtual double loss(std::span<const float> theta) = 0;
  // What loss() measures, for reports ("relative suboptimality", "validation loss").
  virtual std::string loss_name() const = 0;
};

// Peer i minimises f_i(x) = ½ Σ_k a_k (x_k − b_ik)² from stochastic gradients ∇f_i(x) + σξ. The swarm's
// objective is the mean of the f_i over all of the scenario's peers; its minimiser x* is the mean of the
// b_i. The curvatures a_k spread evenly over [0.1, 1]; b_i = b + h·z_i with b, z_i standard normal, so h
// sets how far the peers' data disagree (h = 0: identical data). Losses are relative suboptimality
// (f(x) − f*) / (f(x₀) − f*): 1 at the start (x₀ = 0), 0 at the optimum.
struct QuadraticObjective {
  size_t dim = 256;
  double heterogeneity = 0.1;  // h: peers reading one corpus differ little; 1 is strongly non-IID
  double noise = 0.1;          // σ, per coordinate and step
  double lr = 0.2;             // inner SGD step size (stable below 2)
};

// Throws std::invalid_argument naming a bad field.
void validate(const QuadraticObjective& o);
// A round's SGD steps applied in closed form; `seed` fixes the data and the gradient noise.
std::unique_ptr<SimObjective> make_quadratic(const QuadraticObjective& o, size_t peers, uint64_t seed);

}  // namespace murmur::netem

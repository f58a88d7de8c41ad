#include "netem/lab.h"

#include <cmath>
#include <stdexcept>

#include "compress/codec_spec.h"
#include "gossip/codec_policy.h"
#include "gossip/outer_optimizer.h"
#include "gossip/wire.h"
#include "netem/lockstep.h"

namespace murmur::netem {

namespace g = murmur::gossip;

void validate(const LabConfig& c) {
  auto fail = [](const std::string& what) { throw std::invalid_argument(what); };
  if (c.algo != "allreduce" && c.algo != "diloco" && c.algo != "gossip" && c.algo != "local")
    fail("algo must be allreduce, diloco, gossip or local, got '" + c.algo + "'");
  if (c.peers < 1 || c.peers > 4096) fail("peers must be within 1..4096");
  if (c.rounds < 1) fail("rounds must be at least 1");
  if (!(c.round.outer_lr >= 0 && c.round.outer_lr <= 10)) fail("outer-lr must be within 0..10");
  if (!(c.round.outer_momentum >= 0 && c.round.outer_momentum < 1)) fail("outer-momentum must be in [0, 1)");
  if (c.degree < 1 || c.degree > 64) fail("degree must be within 1..64");
  if (c.relink_every < 0) fail("relink-every must be >= 0");
  if (c.eval_every < 1) fail("eval-every must be at least 1");
  c.round.schedule.validate();
  if (c.byzantine > 0 && c.algo != "gossip") fail("Byzantine peers need the gossip algorithm");
  if (c.byzantine >= c.peers) fail("at least one peer must be honest");
}

double ring_allreduce_bytes(size_t n, size_t p) {
  if (p < 2) return 0;
  const compress::CodecSpec fp32 = compress::parse_codec_spec("fp32");
  double per_op = 0;  // every segment once
  for (size_t k = 0; k < p; ++k) {
    const size_t values = n / p + (k < n % p ? 1 : 0);
    g::RingSegment seg{0, 0, std::vector<uint8_t>(g::payload_bytes(fp32, values))};
    per_op += double(g::wire::encoded_size(g::TrainMessage{std::move(seg)}));
  }
  // Each rank sends all segments but one in the reduce-scatter and again in the all-gather.
  return 2.0 * double(p - 1) / double(p) * per_op;
}

namespace {

bool eval_due(const LabConfig& c, int64_t done) { return done % c.eval_every == 0 || done == c.rounds; }

// The point of peers that each hold their own model.
LabPoint point_of(SimObjective& obj, int64_t done, const std::vector<std::vector<float>>& models,
                  double bytes) {
  LabPoint p{done, 0, 0, spread(models), bytes};
  for (const auto& m : models) p.loss += obj.loss(m) / double(models.size());
  p.loss_of_mean = obj.loss(mean_of(models));
  return p;
}

}  // namespace

std::vector<LabPoint> run_lab(SimObjective& obj, const LabConfig& c,
                              const std::function<void(const LabPoint&)>& progress) {
  validate(c);
  const size_t n = obj.dim(), peers = c.peers;
  const float lr = static_cast<float>(c.round.outer_lr), mu = static_cast<float>(c.round.outer_momentum);
  const g::RoundSchedule& sched = c.round.schedule;
  auto local = [&](size_t i, std::span<float> theta, int64_t r) {
    obj.local_steps(i, theta, sched.first_step(uint64_t(r)), sched.steps_in(uint64_t(r)));
  };
  std::vector<LabPoint> out;
  auto emit = [&](LabPoint p) {
    if (progress) progress(p);
    out.push_back(p);
  };

  if (c.algo == "allreduce" || c.algo == "diloco") {
    // Every peer holds the same θ: one copy, and the loss of the mean is everyone's.
    const double ring = ring_allreduce_bytes(n, peers);
    std::vector<float> theta = obj.initial(), mean(n);
    g::OuterOptimizer outer(n);
    double bytes = 0;
    for (int64_t r = 0; r < c.rounds; ++r) {
      if (c.algo == "allreduce") {
        const int64_t steps = sched.steps_in(uint64_t(r));
        obj.data_parallel_steps(theta, sched.first_step(uint64_t(r)), steps);
        bytes += double(steps) * ring;
      } else {
        std::fill(mean.begin(), mean.end(), 0.0f);
        std::vector<float> peer(n);
        for (size_t i = 0; i < peers; ++i) {
          peer = theta;
          local(i, peer, r);
          for (size_t k = 0; k < n; ++k) mean[k] += peer[k] / float(peers);
        }
        // mean: θ' on entry, the new θ on return; warm-up rounds average
        if (!sched.warming_up(uint64_t(r))) outer.step(theta, mean, lr, mu);
        theta.swap(mean);
        bytes += ring;
      }
      if (eval_due(c, r + 1)) {
        const double l = obj.loss(theta);
        emit({r + 1, l, l, 0, bytes});
      }
    }
    return out;
  }

  if (c.algo == "local") {
    std::vector<std::vector<float>> models(peers, obj.initial());
    for (int64_t r = 0; r < c.rounds; ++r) {
      for (size_t i = 0; i < peers; ++i) local(i, models[i], r);
      if (eval_due(c, r + 1)) emit(point_of(obj, r + 1, models, 0));
    }
    return out;
  }

  // gossip: the ideal network makes a round wait only for what attackers withhold; the clock is virtual.
  LockstepSwarm swarm(std::vector<std::vector<float>>(peers, obj.initial()), c.round, c.seed);
  const size_t honest = peers - c.byzantine;
  for (size_t i = honest; i < peers; ++i)
    swarm.adversaries.emplace(int(i), g::Adversary(c.attack, c.seed + i));
  SplitMix64 rng(mix64(c.seed ^ 0x1ab));
  for (int64_t r = 0; r < c.rounds; ++r) {
    if (r == 0 || (c.relink_every > 0 && r % c.relink_every == 0))
      swarm.set_graph(random_graph(int(peers), c.degree, rng));
    if (!swarm.round([&](int i, std::vector<float>& th) { local(size_t(i), th, r); })) {
      if (c.byzantine == 0) throw std::logic_error("lab: a gossip round did not mix on the ideal network");
      swarm.expire();
    }
    if (eval_due(c, r + 1)) {
      double bytes = 0;
      for (uint64_t b : swarm.bytes_sent) bytes += double(b) / double(peers);
      const std::vector<std::vector<float>> models(swarm.model.begin(),
                                                   swarm.model.begin() + std::ptrdiff_t(honest));
      LabPoint p = point_of(obj, r + 1, models, bytes);
      p.links_cut = swarm.cuts.size();
      emit(p);
    }
  }
  return out;
}

}  // namespace murmur::netem

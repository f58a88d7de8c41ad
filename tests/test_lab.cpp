// The algorithm lab (netem/lab.h) on the analytical objective: the four algorithms at equal steps, the
// identity that ties gossip to DiLoCo, and the bytes each one counts.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "netem/lab.h"
#include "netem/lockstep.h"

namespace murmur::netem {
namespace {

constexpr size_t kPeers = 4;
constexpr int kH = 5;

std::vector<LabPoint> run(const std::string& algo, const std::string& codec = "fp32", int64_t rounds = 20,
                          bool outer_after_mix = false, int64_t warmup_steps = 0) {
  QuadraticObjective q;
  q.dim = 256;
  q.heterogeneity = 0.5;
  const auto obj = make_quadratic(q, kPeers, 7);
  LabConfig c;
  c.algo = algo;
  c.peers = kPeers;
  c.rounds = rounds;
  c.round.schedule = {.inner_steps = kH, .warmup_steps = warmup_steps, .warmup_inner_steps = 2};
  c.round.consensus.codec = codec;
  c.round.outer_after_mix = outer_after_mix;
  c.degree = 3;
  c.eval_every = 5;
  return run_lab(*obj, c);
}

// On the complete graph with exact copies, each peer's Nesterov step on its own pseudo-gradient, then
// the average (MH weights 1/P, γ = 1), equals DiLoCo's step on the average pseudo-gradient: the outer
// step is linear in Δ and m, and every round starts from one θ.
// With the outer step after the mix, the mix is the exact average of θ', so the step is DiLoCo's too.
// A warm-up (rounds of 2 steps that average) keeps it so: every driver reads one schedule.
TEST(Lab, GossipOnTheCompleteGraphWithExactCopiesIsDiLoCo) {
  for (const auto& [after_mix, warmup] : {std::pair{false, 0}, {true, 0}, {false, 10}, {true, 10}}) {
    const auto diloco = run("diloco", "fp32", 20, false, warmup),
               gossip = run("gossip", "fp32", 20, after_mix, warmup);
    ASSERT_EQ(diloco.size(), 4u);
    ASSERT_EQ(gossip.size(), 4u);
    for (size_t k = 0; k < diloco.size(); ++k) {
      EXPECT_EQ(gossip[k].round, diloco[k].round);
      EXPECT_NEAR(gossip[k].loss_of_mean, diloco[k].loss_of_mean, 1e-4 * diloco[k].loss_of_mean) << k;
      EXPECT_NEAR(gossip[k].loss, gossip[k].loss_of_mean, 1e-4 * diloco[k].loss_of_mean) << k;
      EXPECT_LT(gossip[k].consensus, 1e-5);
    }
  }
}

TEST(Lab, AlgorithmsRankAndCountTheirBytes) {
  const auto allreduce = run("allreduce"), diloco = run("diloco"), local = run("local"),
             int8 = run("gossip", "int8:block=64"), fp32 = run("gossip");
  // Synchronous data parallelism averages the noise of every step; local peers each go to their own
  // optimum, the worst for the swarm's objective (the mean model does better than each peer).
  EXPECT_LT(allreduce.back().loss, diloco.back().loss);
  EXPECT_LT(diloco.back().loss, local.back().loss);
  EXPECT_LT(local.back().loss_of_mean, local.back().loss);
  EXPECT_GT(local.back().consensus, 0.05);
  EXPECT_LT(int8.back().loss, local.back().loss);

  const double ring = ring_allreduce_bytes(256, kPeers);
  EXPECT_DOUBLE_EQ(allreduce.back().bytes_per_peer, 20.0 * kH * ring);
  EXPECT_DOUBLE_EQ(diloco.back().bytes_per_peer, 20.0 * ring);
  EXPECT_EQ(local.back().bytes_per_peer, 0.0);
  // 3 links, one delta each a round (and a 32-byte digest per link at the start).
  EXPECT_GT(fp32.back().bytes_per_peer, 20.0 * 3 * 4 * 256);
  EXPECT_LT(fp32.back().bytes_per_peer, 20.0 * 3 * (4 * 256 + 200));
  EXPECT_LT(int8.back().bytes_per_peer, 0.4 * fp32.back().bytes_per_peer);
}

TEST(Lab, RingBytesAndBadConfigs) {
  EXPECT_EQ(ring_allreduce_bytes(1000, 1), 0.0);
  const double b = ring_allreduce_bytes(1000, 4);  // 1.5 x 4,000 bytes of values plus framing
  EXPECT_GT(b, 6000.0);
  EXPECT_LT(b, 6000.0 + 6 * 64);
  LabConfig c;
  c.algo = "ring";
  EXPECT_THROW(validate(c), std::invalid_argument);
  c = LabConfig{};
  c.peers = 0;
  EXPECT_THROW(validate(c), std::invalid_argument);
  c = LabConfig{};
  c.round.outer_momentum = 1;
  EXPECT_THROW(validate(c), std::invalid_argument);
}

TEST(Lockstep, RandomGraphsRespectTheDegree) {
  SplitMix64 rng(3);
  for (int p : {2, 5, 8, 33}) {
    const auto g = random_graph(p, 3, rng);
    std::vector<int> deg(size_t(p), 0);
    for (const auto& [a, b] : g) {
      EXPECT_LT(a, b);
      ++deg[size_t(a)];
      ++deg[size_t(b)];
    }
    for (int d : deg) EXPECT_LE(d, 3);
  }
  EXPECT_EQ(random_graph(4, 3, rng).size(), 6u);  // degree p - 1: every pair
}

}  // namespace
}  // namespace murmur::netem

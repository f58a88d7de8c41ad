// Hostile neighbours (gossip/byzantine.h) against the default defences (adaptive centered clipping, the
// norm guard with its prior, checked snapshots, strikes that cut a link, the mix's NaN undo), on the
// lab's lockstep network with the analytical objective: the honest peers end near the clean run, the
// blatant attackers' links are cut, and nothing throws. The objective is heterogeneous (each peer has its
// own optimum, the swarm's is their mean), so a cut attacker's data is missing from the honest peers'
// consensus: the measure is the share of the gain over training alone that the honest peers keep.
#include <gtest/gtest.h>

#include <cmath>

#include "gossip/byzantine.h"
#include "netem/lab.h"
#include "netem/lockstep.h"
#include "tests/round_network.h"

namespace murmur::netem {
namespace {

namespace g = murmur::gossip;

constexpr size_t kPeers = 8;
constexpr int kH = 5;

LabConfig lab(size_t byzantine, g::Attack attack, g::Aggregation aggregation = g::Aggregation::clip,
              const char* algo = "gossip") {
  LabConfig c;
  c.algo = algo;
  c.peers = kPeers;
  c.rounds = 30;
  // The defaults' shape: a sync warm-up (5 rounds of 2 steps that average), then rounds of H with the
  // Nesterov step after the mix: the defences must hold across the switch, where updates grow at once.
  c.round.schedule = {.inner_steps = kH, .warmup_steps = 10, .warmup_inner_steps = 2};
  c.round.consensus.codec = "int8:block=64";
  c.round.consensus.aggregation = aggregation;
  c.degree = 3;
  c.relink_every = 5;  // membership re-samples links, so cut ones are replaced
  c.eval_every = 30;
  c.byzantine = byzantine;
  c.attack.kind = attack;
  return c;
}

LabPoint run(const LabConfig& c) {
  QuadraticObjective q;
  q.dim = 512;
  q.heterogeneity = 0.5;
  const auto obj = make_quadratic(q, kPeers, 7);
  return run_lab(*obj, c).back();
}

// The share of the gain of the clean run over training alone that a run keeps.
double kept(const LabPoint& p, const LabPoint& clean, const LabPoint& alone) {
  return (alone.loss - p.loss) / (alone.loss - clean.loss);
}

TEST(Byzantine, OneAndTwoAttackersOfEightLeaveTheHonestPeersMostOfTheGain) {
  const LabPoint alone = run(lab(0, g::Attack::sign_flip, g::Aggregation::clip, "local"));
  for (const g::Aggregation agg : {g::Aggregation::clip, g::Aggregation::trimmed_mean}) {
    const LabPoint clean = run(lab(0, g::Attack::sign_flip, agg));
    EXPECT_LT(clean.loss, 0.2 * alone.loss) << to_string(agg);
    for (const size_t attackers : {1, 2}) {
      for (const g::Attack a : g::all_attacks()) {
        const LabPoint p = run(lab(attackers, a, agg));
        EXPECT_GT(kept(p, clean, alone), 0.8) << to_string(agg) << ", " << attackers << " " << to_string(a);
        // The blatant attacks are recognised and the attackers cut off; ALIE and IPM hide in the spread
        // of honest values, where clipping bounds them.
        if (a != g::Attack::alie && a != g::Attack::ipm) {
          EXPECT_GE(p.links_cut, attackers) << to_string(a);
        }
      }
    }
  }
}

TEST(Byzantine, WithoutTheDefencesOneSignFlipperRuinsTheRun) {
  LabConfig off = lab(1, g::Attack::sign_flip, g::Aggregation::mean);
  off.round.consensus.guard = {.factor = 0, .window = 32, .warmup = 8, .max_relative = 0};
  off.round.strikes_to_cut = 0;
  const LabPoint p = run(off);
  EXPECT_FALSE(p.loss < 10 * run(lab(0, g::Attack::sign_flip)).loss) << p.loss;
}

TEST(Byzantine, AttacksAndAggregationsParseByName) {
  for (const g::Attack a : g::all_attacks()) EXPECT_EQ(g::parse_attack(g::to_string(a)), a);
  EXPECT_THROW(g::parse_attack("gentle"), std::invalid_argument);
  EXPECT_EQ(g::parse_aggregation("trimmed-mean"), g::Aggregation::trimmed_mean);
  EXPECT_THROW(g::parse_aggregation("median"), std::invalid_argument);
  EXPECT_THROW(g::Adversary({g::Attack::random, -1}, 1), std::invalid_argument);
}

// A link that keeps sending stale deltas collects strikes and is cut; later link requests from the same
// peer are refused; the peers that cut it stop waiting for it.
TEST(Byzantine, StrikesCutALinkForGood) {
  std::vector<std::vector<float>> start(3, std::vector<float>(64, 1.0f));
  g::RoundConfig cfg = test::plain_round("fp32", 1.0);
  cfg.strikes_to_cut = 3;
  LockstepSwarm s(start, cfg, 3);
  s.adversaries.emplace(2, g::Adversary({g::Attack::stale, 0}, 1));
  s.set_graph({{0, 1}, {0, 2}, {1, 2}});
  for (int r = 0; r < 6; ++r)
    if (!s.round()) s.expire();
  ASSERT_EQ(s.cuts.size(), 2u);  // peers 0 and 1 each cut peer 2
  for (const auto& [by, cut] : s.cuts) {
    EXPECT_NE(by, 2);
    EXPECT_EQ(cut.peer, lockstep_id(2));
    EXPECT_TRUE(s.peers[size_t(by)].distrusts(lockstep_id(2)));
  }
  EXPECT_FALSE(s.edges.contains({0, 2}));
  s.connect(0, 2);  // a new link: refused again
  EXPECT_FALSE(s.edges.contains({0, 2}));
  EXPECT_TRUE(s.round());  // and nobody waits for it
}

// A mix whose result diverges is undone by rollback: θ goes back to before the mix, the heaviest link is
// struck; with no mix since the start there is nothing to go back to.
TEST(Byzantine, RollbackRestoresTheStateBeforeTheMix) {
  for (const g::Aggregation agg : {g::Aggregation::mean, g::Aggregation::trimmed_mean}) {
    std::vector<std::vector<float>> start = {std::vector<float>(16, 0.0f), std::vector<float>(16, 4.0f)};
    g::RoundConfig cfg = test::plain_round("fp32", 1.0);
    cfg.consensus.aggregation = agg;
    LockstepSwarm s(start, cfg, 1);
    EXPECT_FALSE(s.peers[0].rollback());
    s.set_graph({{0, 1}});
    ASSERT_TRUE(s.round());
    EXPECT_FLOAT_EQ(s.peers[0].theta()[0], 2.0f) << to_string(agg);  // 0 + (4 − 0)/2
    const uint64_t rejected = s.peers[0].counters().rejected;
    ASSERT_TRUE(s.peers[0].rollback());
    EXPECT_FLOAT_EQ(s.peers[0].theta()[0], 0.0f);
    EXPECT_EQ(s.peers[0].counters().rollbacks, 1u);
    EXPECT_EQ(s.peers[0].counters().rejected, rejected + 1)
        << to_string(agg) << ": the heaviest link is struck";
    EXPECT_FALSE(s.peers[0].rollback());  // once per mix
  }
}

}  // namespace
}  // namespace murmur::netem

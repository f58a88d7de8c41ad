// The round protocol (gossip/round_driver.h) on the fake network of tests/round_network.h: late join,
// sequence gaps and their repair, the deferred link-down, deadlines, the outer step and resuming.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "gossip/outer_optimizer.h"
#include "model/rng.h"
#include "tests/round_network.h"

namespace murmur::test {
namespace {

namespace g = murmur::gossip;
using Phase = g::RoundDriver::Phase;

Vec gaussian(size_t n, uint64_t seed, double mean = 0) {
  SplitMix64 rng(seed);
  Vec v(n);
  for (float& x : v) x = static_cast<float>(mean + rng.normal());
  return v;
}

// A local step that moves each peer towards its own target: peers disagree, as with local data.
void drift(int i, Vec& th) {
  for (size_t k = 0; k < th.size(); ++k) th[k] += 0.01f * static_cast<float>((i + 1) * ((k % 3) - 1));
}

bool same(std::span<const float> a, std::span<const float> b) { return std::ranges::equal(a, b); }

constexpr size_t n = 300;

TEST(RoundDriver, LateJoinerAdoptsTheRunningSwarmsState) {
  const Vec start = gaussian(n, 1);
  // Peers 0-2 train from the shared start; peer 3 comes later.
  RoundNet s({start, start, start, gaussian(n, 2)}, plain_round("int8:block=64", 1.0), 7);
  s.set_graph({{0, 1}, {1, 2}, {0, 2}});
  EXPECT_TRUE(s.adoptions.empty());  // a swarm as young as oneself has nothing to give
  for (int r = 0; r < 5; ++r) {
    for (int i = 0; i < 3; ++i) {
      drift(i, s.model[i]);
      s.done(i);
    }
    s.deliver();
  }
  ASSERT_EQ(s.peers[0].round(), 5u);
  EXPECT_TRUE(s.peers[3].fresh());

  s.connect(3, 0);
  s.deliver();
  ASSERT_EQ(s.adoptions.size(), 1u);
  EXPECT_EQ(s.adoptions[0].first, 3);
  EXPECT_EQ(s.adoptions[0].second.from, pid(0));
  EXPECT_EQ(s.adoptions[0].second.round, 5u);
  EXPECT_FALSE(s.peers[3].fresh());
  EXPECT_EQ(s.peers[3].round(), 5u);
  // It took the neighbour's public copy, which every neighbour of peer 0 mirrors.
  EXPECT_TRUE(same(s.model[3], s.peers[0].consensus().public_copy()));
  EXPECT_TRUE(same(s.peers[3].consensus().public_copy(), s.peers[0].consensus().public_copy()));
  // Peer 0's mirror of the joiner is its new state, not the joiner's initialisation.
  EXPECT_TRUE(same(*s.peers[0].consensus().link_copy(pid(3)), s.peers[3].consensus().public_copy()));

  // From here the four train in step: every peer mixes round 5.
  s.mixes.clear();
  ASSERT_TRUE(s.round(drift));
  ASSERT_EQ(s.mixes.size(), 4u);
  for (const auto& [i, m] : s.mixes) {
    EXPECT_EQ(m.round, 5u) << "peer " << i;
    EXPECT_TRUE(m.late.empty()) << "peer " << i;
  }
  EXPECT_EQ(s.rejected(), 0u);
}

TEST(RoundDriver, GapAsksForResyncAndTheSnapshotRepairsTheMirror) {
  RoundNet s({gaussian(n, 1), gaussian(n, 2)}, plain_round("int8:block=64", 1.0), 3);
  s.set_graph({{0, 1}});
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(s.round(drift));
  ASSERT_TRUE(same(*s.peers[1].consensus().link_copy(pid(0)), s.peers[0].consensus().public_copy()));

  // Round 2: peer 0's delta to peer 1 is lost. Peer 1 waits for it until the deadline.
  bool lost = false;
  s.on_wire = [&](RoundNet::Msg& m) {
    if (lost || m.from != 0 || !std::holds_alternative<g::Delta>(*m.msg)) return true;
    lost = true;
    return false;
  };
  for (int i = 0; i < 2; ++i) {
    drift(i, s.model[i]);
    s.done(i);
  }
  s.deliver();
  EXPECT_EQ(s.peers[0].phase(), Phase::computing);  // it had peer 1's delta
  ASSERT_EQ(s.peers[1].phase(), Phase::waiting);
  s.now = *s.peers[1].deadline();
  s.peers[1].tick(s.now);
  s.collect(1);
  ASSERT_EQ(s.peers[1].phase(), Phase::computing);
  ASSERT_EQ(s.mixes.back().second.late, std::vector<g::PeerId>{pid(0)});

  // Round 3: the next delta shows the gap; the resync's snapshot repairs the mirror bit for bit and
  // counts as round 3's delta, so nobody waits.
  const uint64_t requested = s.peers[1].counters().resyncs_requested;
  const uint64_t served = s.peers[0].counters().resyncs_served;
  ASSERT_TRUE(s.round(drift));
  EXPECT_EQ(s.peers[1].consensus().counters().gaps, 1u);
  EXPECT_EQ(s.peers[1].counters().resyncs_requested, requested + 1);
  EXPECT_EQ(s.peers[0].counters().resyncs_served, served + 1);
  EXPECT_TRUE(same(*s.peers[1].consensus().link_copy(pid(0)), s.peers[0].consensus().public_copy()));
  EXPECT_TRUE(same(*s.peers[0].consensus().link_copy(pid(1)), s.peers[1].consensus().public_copy()));
  // ...and deltas apply again.
  ASSERT_TRUE(s.round(drift));
  EXPECT_TRUE(same(*s.peers[1].consensus().link_copy(pid(0)), s.peers[0].consensus().public_copy()));
  EXPECT_EQ(s.peers[1].consensus().counters().gaps, 1u);
}

// Peer 1 finishes its round and leaves right after: it mixed with peer 0's delta of that round, so peer
// 0 must mix with peer 1's, or the swarm's sum of parameters moves.
TEST(RoundDriver, LinkClosedAfterItsLastDeltaKeepsTheSwarmAverage) {
  RoundNet s({gaussian(n, 1, 0), gaussian(n, 2, 3), gaussian(n, 3, -2)}, plain_round("fp32", 1.0), 5);
  s.set_graph({{0, 1}, {0, 2}});  // a line 1 - 0 - 2
  const Vec avg0 = s.average();

  s.done(1);
  s.done(0);
  s.deliver();
  ASSERT_EQ(s.peers[1].phase(), Phase::computing);  // mixed: it had peer 0's delta
  ASSERT_EQ(s.peers[0].phase(), Phase::waiting);    // waits for peer 2
  s.disconnect(0, 1);
  EXPECT_EQ(s.peers[0].links(), 2u);  // closing: kept for this round's mix
  EXPECT_EQ(s.peers[1].links(), 0u);
  s.done(2);
  s.deliver();
  ASSERT_EQ(s.peers[0].phase(), Phase::computing);
  EXPECT_EQ(s.mixes.size(), 3u);
  for (const auto& [i, m] : s.mixes) {
    if (i == 0) {
      EXPECT_EQ(m.report.links, 2u);
    }
  }
  EXPECT_EQ(s.peers[0].links(), 1u);  // and gone after it
  EXPECT_LT(g::l2_distance(s.average(), avg0) / g::l2_norm(avg0), 1e-6);
}

// A link that goes down before its delta of the round came is dropped at once, and the round need not
// wait for it any more.
TEST(RoundDriver, LinkDownBeforeItsDeltaEndsTheWait) {
  RoundNet s({gaussian(n, 1), gaussian(n, 2)}, plain_round("fp32", 1.0), 5);
  s.set_graph({{0, 1}});
  s.done(0);
  s.deliver();
  ASSERT_EQ(s.peers[0].phase(), Phase::waiting);
  s.disconnect(0, 1);
  EXPECT_EQ(s.peers[0].phase(), Phase::computing);
  EXPECT_EQ(s.peers[0].links(), 0u);
  EXPECT_EQ(s.mixes.back().second.report.links, 0u);
}

TEST(RoundDriver, DeadlineMixesWithoutASilentNeighbour) {
  g::RoundConfig cfg = plain_round("fp32", 1.0);
  cfg.wait_max = 2000;
  RoundNet s({gaussian(n, 1), gaussian(n, 2)}, cfg, 5);
  s.set_graph({{0, 1}});
  s.now = 100;
  drift(0, s.model[0]);
  s.done(0);
  s.deliver();
  ASSERT_EQ(s.peers[0].deadline(), std::optional<g::Millis>(2100));
  s.peers[0].tick(2099);
  s.collect(0);
  EXPECT_EQ(s.peers[0].phase(), Phase::waiting);
  EXPECT_TRUE(s.mixes.empty());
  s.peers[0].tick(2100);
  s.collect(0);
  ASSERT_EQ(s.mixes.size(), 1u);
  const g::Mixed& m = s.mixes[0].second;
  EXPECT_EQ(m.round, 0u);
  EXPECT_EQ(m.late, std::vector<g::PeerId>{pid(1)});
  EXPECT_EQ(m.report.links, 1u);  // the older copy still mixes
  EXPECT_EQ(s.peers[0].counters().late_links, 1u);
  EXPECT_EQ(s.peers[0].round(), 1u);
  // The slow peer catches up: its round-0 delta arrives while peer 0 computes round 1, and it mixes at
  // once, since it holds peer 0's round-0 delta.
  s.done(1);
  s.deliver();
  EXPECT_EQ(s.peers[1].phase(), Phase::computing);
  EXPECT_TRUE(same(*s.peers[0].consensus().link_copy(pid(1)), s.peers[1].consensus().public_copy()));
}

// The outer step is Nesterov on the pseudo-gradient, in both orders (alone, the mix changes nothing).
// Warm-up rounds average instead (no outer step, the momentum stays zero); the outer step starts after.
TEST(RoundDriver, OuterStepIsNesterovOnThePseudoGradientAfterTheWarmUp) {
  for (const bool after_mix : {false, true}) {
    for (const int64_t warmup : {0, 5}) {
      g::RoundConfig cfg;
      cfg.consensus.codec = "fp32";
      cfg.outer_after_mix = after_mix;
      cfg.schedule = {.inner_steps = 4, .warmup_steps = warmup, .warmup_inner_steps = 2};  // 2, 2, 1, then 4
      const int warm_rounds = warmup > 0 ? 3 : 0;
      RoundNet s({gaussian(n, 1)}, cfg, 1);  // alone: every round mixes at once
      g::OuterOptimizer by_hand(n);
      Vec expect = s.model[0];
      for (int r = 0; r < 5; ++r) {
        const Vec start = expect;
        drift(r, s.model[0]);
        drift(r, expect);
        if (r >= warm_rounds) by_hand.step(start, expect, 0.7f, 0.9f);
        s.done(0);
        EXPECT_EQ(s.model[0], expect)
            << "round " << r << ", warm-up " << warmup << (after_mix ? ", after" : "");
        EXPECT_TRUE(same(s.peers[0].momentum(), by_hand.momentum())) << "round " << r;
      }
    }
  }
}

TEST(RoundSchedule, PlacesEveryRoundInTheRun) {
  const g::RoundSchedule plain{.inner_steps = 32};
  EXPECT_EQ(plain.warmup_rounds(), 0);
  EXPECT_FALSE(plain.warming_up(0));
  EXPECT_EQ(plain.first_step(3), 96);
  EXPECT_EQ(plain.steps_in(0), 32);
  EXPECT_EQ(plain.rounds_for(256), 8u);
  EXPECT_EQ(plain.rounds_for(257), 9u);  // the last round is cut short by the run
  EXPECT_EQ(plain.rounds_for(0), 0u);

  const g::RoundSchedule warm{.inner_steps = 32, .warmup_steps = 20, .warmup_inner_steps = 8};
  EXPECT_EQ(warm.warmup_rounds(), 3);  // 8, 8, 4
  EXPECT_TRUE(warm.warming_up(2));
  EXPECT_FALSE(warm.warming_up(3));
  const int64_t first[] = {0, 8, 16, 20, 52, 84};
  const int64_t steps[] = {8, 8, 4, 32, 32, 32};
  for (uint64_t r = 0; r < 6; ++r) {
    EXPECT_EQ(warm.first_step(r), first[r]) << r;
    EXPECT_EQ(warm.steps_in(r), steps[r]) << r;
    EXPECT_EQ(warm.first_step(r + 1), warm.first_step(r) + warm.steps_in(r)) << r;
  }
  EXPECT_EQ(warm.rounds_for(20), 3u);
  EXPECT_EQ(warm.rounds_for(84), 5u);
  EXPECT_EQ(warm.rounds_for(85), 6u);
  // A stranger's round number cannot overflow the step count.
  EXPECT_EQ(warm.first_step(~uint64_t{0}), std::numeric_limits<int64_t>::max());

  EXPECT_THROW((g::RoundSchedule{.inner_steps = 0}.validate()), std::invalid_argument);
  EXPECT_THROW((g::RoundSchedule{.warmup_steps = -1}.validate()), std::invalid_argument);
  EXPECT_THROW((g::RoundSchedule{.warmup_inner_steps = 0}.validate()), std::invalid_argument);
  EXPECT_EQ(warm.describe(), "H = 8 (plain averaging) for 20 steps, then 32");
}

TEST(RoundDriver, ResumeKeepsThePublicCopyAndTheRound) {
  const Vec theta = gaussian(n, 1), public_copy = gaussian(n, 2), momentum = gaussian(n, 3);
  g::RoundDriver d(n, plain_round("int8:block=64", 1.0), 1);
  d.resume(theta, public_copy, momentum, 7);
  EXPECT_FALSE(d.fresh());
  EXPECT_EQ(d.round(), 7u);
  EXPECT_TRUE(same(d.theta(), theta));
  EXPECT_TRUE(same(d.consensus().public_copy(), public_copy));
  EXPECT_TRUE(same(d.momentum(), momentum));
  // A new link gets the state itself (a resumed state is nobody else's), saying it holds round 6.
  d.link_up(pid(1), 1);
  const auto actions = d.take_actions();
  ASSERT_EQ(actions.size(), 1u);
  const auto& send = std::get<g::SendTrain>(actions[0]);
  const auto& snap = std::get<g::Delta>(*send.msg);
  EXPECT_TRUE(snap.snapshot);
  EXPECT_FALSE(snap.codec_payload.empty());
  EXPECT_EQ(g::newest_round(snap), 6);
  EXPECT_EQ(send.seq, 0u);
}

TEST(RoundDriver, RefusesWhatDoesNotBelong) {
  RoundNet s({gaussian(n, 1), gaussian(n, 2)}, plain_round("int8:block=64", 1.0), 5);
  s.set_graph({{0, 1}});
  // Traffic of another link epoch is stale: ignored, nothing sent back.
  s.peers[1].on_message(pid(0), 99, 5, g::ResyncRequest{0}, 0);
  EXPECT_TRUE(s.peers[1].take_actions().empty());
  // A ring segment belongs to the baselines.
  const size_t rejections = s.rejections.size();  // digest mismatches at link-up (different starts)
  s.peers[1].on_message(pid(0), s.epochs.at({0, 1}), 2, g::RingSegment{0, 0, {}}, 0);
  s.collect(1);
  ASSERT_EQ(s.rejections.size(), rejections + 1);
  // θ' with a NaN changes nothing; a second local_steps_done in one round is a driver bug.
  Vec bad = s.model[0];
  bad[7] = NAN;
  EXPECT_THROW(s.peers[0].local_steps_done(bad, 0), std::domain_error);
  EXPECT_TRUE(same(s.peers[0].momentum(), Vec(n, 0.0f)));
  EXPECT_EQ(s.peers[0].phase(), Phase::computing);
  s.done(0);
  EXPECT_THROW(s.peers[0].local_steps_done(s.model[0], 0), std::logic_error);
  EXPECT_THROW(g::RoundDriver(
                   n,
                   [] {
                     g::RoundConfig c;
                     c.wait_max = -1;
                     return c;
                   }(),
                   1),
               std::invalid_argument);
}

}  // namespace
}  // namespace murmur::test

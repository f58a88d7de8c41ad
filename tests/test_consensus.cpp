// The decentralized training algorithm (gossip/): DiLoCo's outer step, CHOCO
// consensus with public copies, the update guard, the codec policy and the
// checkpointed state. Several in-process peers talk over a simulated network.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "compress/codec.h"
#include "gossip/algorithm_state.h"
#include "gossip/codec_policy.h"
#include "gossip/consensus.h"
#include "gossip/outer_optimizer.h"
#include "gossip/update_guard.h"
#include "model/rng.h"
#include "tests/round_network.h"

namespace g = murmur::gossip;
using g::Consensus;
using g::ConsensusConfig;
using g::Delta;
using g::PeerId;

namespace {

using murmur::test::Edge;
using murmur::test::pid;
using murmur::test::RoundNet;
using murmur::test::Vec;

Vec gaussian(size_t n, uint64_t seed, double mean = 0, double sd = 1) {
  murmur::SplitMix64 rng(seed);
  Vec v(n);
  for (float& x : v) x = static_cast<float>(mean + sd * rng.normal());
  return v;
}

ConsensusConfig config(const char* codec, double gamma) {
  ConsensusConfig c;
  c.aggregation = g::Aggregation::mean;
  c.codec = codec;
  c.gamma = gamma;
  return c;
}

std::set<Edge> ring(int p) {
  std::set<Edge> e;
  for (int i = 0; i < p; ++i) e.insert(std::minmax(i, (i + 1) % p));
  return e;
}

// P peers running the round driver on the fake network (tests/round_network.h), plain local SGD
// outside, each starting from its own point.
RoundNet swarm(int p, size_t n, const char* codec, double gamma, uint64_t seed) {
  std::vector<Vec> start;
  for (int i = 0; i < p; ++i)
    start.push_back(gaussian(n, seed * 100 + static_cast<uint64_t>(i), 0.5 * i, 1.0));
  return RoundNet(start, murmur::test::plain_round(codec, gamma), seed);
}

double rel_change(const Vec& a, const Vec& b) { return g::l2_distance(a, b) / g::l2_norm(b); }

// Two random perfect matchings of 8 peers: a random graph of degree <= 2, new every round.
std::set<Edge> random_graph(int p, murmur::SplitMix64& rng) {
  std::set<Edge> e;
  for (int m = 0; m < 2; ++m) {
    std::vector<int> order(static_cast<size_t>(p));
    for (int i = 0; i < p; ++i) order[static_cast<size_t>(i)] = i;
    for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
    for (size_t i = 0; i + 1 < order.size(); i += 2) e.insert(std::minmax(order[i], order[i + 1]));
  }
  return e;
}

}  // namespace

// (a) Uncompressed CHOCO with γ = 1 is plain gossip averaging x ← W x.
TEST(Consensus, RingOfEightAveragesGeometrically) {
  RoundNet s = swarm(8, 1000, "fp32", 1.0, 1);
  s.set_graph(ring(8));
  const Vec avg0 = s.average();
  std::vector<double> dist{s.distance()};
  for (int r = 0; r < 100; ++r) {
    ASSERT_TRUE(s.round());
    dist.push_back(s.distance());
  }
  // MH weights 1/3 on the ring: second eigenvalue 1/3 + 2/3·cos(π/4) ≈ 0.805, so
  // each 10 rounds shrink the distance by about 0.11.
  for (int r = 0; r + 10 <= 60; r += 10) EXPECT_LT(dist[r + 10], 0.2 * dist[r]) << "round " << r;
  EXPECT_LT(dist.back(), 1e-5);
  EXPECT_EQ(s.rejected(), 0u);
  EXPECT_LT(rel_change(s.average(), avg0), 1e-6);
  for (int i = 0; i < 8; ++i) EXPECT_LT(rel_change(s.model[i], avg0), 1e-5) << "peer " << i;
  EXPECT_NEAR(s.peers[0].consensus().consensus_distance(s.model[0]), 0.0, 1e-5);
}

TEST(Consensus, TimeVaryingRandomGraphReachesTheAverage) {
  RoundNet s = swarm(8, 1000, "fp32", 1.0, 2);
  murmur::SplitMix64 rng(7);
  const Vec avg0 = s.average();
  for (int r = 0; r < 80; ++r) {
    s.set_graph(random_graph(8, rng));
    ASSERT_TRUE(s.round());
  }
  EXPECT_LT(s.distance(), 1e-5);
  EXPECT_LT(rel_change(s.average(), avg0), 1e-6);
}

// (b) Compressed: the average is kept exactly (up to float rounding) and the
// remainder of each round goes out later, so the peers still agree.
TEST(Consensus, CompressedCodecsReachConsensus) {
  struct Case {
    const char* codec;
    double gamma;
    int rounds;
    double bound;
  };
  for (const Case& c :
       {Case{"int8:block=64", 1.0, 150, 1e-4}, Case{"int4:block=64", 0.8, 200, 1e-4},
        Case{"sign:block=256", 0.1, 600, 3e-3}, Case{"int4:block=64,stochastic", 0.8, 200, 1e-4}}) {
    RoundNet s = swarm(8, 2048, c.codec, c.gamma, 3);
    s.set_graph(ring(8));
    const Vec avg0 = s.average();
    const double d0 = s.distance();
    for (int r = 0; r < c.rounds; ++r) ASSERT_TRUE(s.round());
    EXPECT_LT(s.distance(), c.bound * d0) << c.codec;
    EXPECT_LT(rel_change(s.average(), avg0), 1e-5) << c.codec;
    EXPECT_EQ(s.rejected(), 0u) << c.codec;
  }
}

// (c) f_i(θ) = ½‖θ − c_i‖²: H local SGD steps, DiLoCo's outer step, gossip. The
// gradients are linear and mixing keeps the mean, so the mean of the θ_i follows
// centralized training on Σ f_i exactly (to float rounding) and reaches c̄. Each peer
// stays within a client drift of the mean that shrinks with the learning rate, and a
// few gossip rounds without training close it.
TEST(Consensus, LocalSgdOnQuadraticsFindsTheGlobalMinimiser) {
  constexpr int P = 8, H = 4, kRounds = 400;
  constexpr size_t n = 256;
  for (const char* codec : {"fp32", "int8:block=64"}) {
    const Vec start = gaussian(n, 400);  // one initial point, as the real swarm (same seed)
    RoundNet s(std::vector<Vec>(P, start), murmur::test::plain_round(codec, 1.0), 4);
    s.set_graph(ring(P));
    std::vector<Vec> c;
    for (int i = 0; i < P; ++i) c.push_back(gaussian(n, 50 + static_cast<uint64_t>(i), 3.0 * i, 2.0));
    Vec cbar(n, 0.0f);
    for (const Vec& ci : c)
      for (size_t k = 0; k < n; ++k) cbar[k] += ci[k] / P;
    std::vector<g::OuterOptimizer> outer(P, g::OuterOptimizer(n));
    g::OuterOptimizer central_outer(n);
    Vec central = start;
    double drift_at_100 = 0;
    for (int r = 0; r < kRounds; ++r) {
      const float lr = 0.1f / (1.0f + static_cast<float>(r) / 10.0f);
      auto local_steps = [&](Vec& th, const Vec& target) {
        const Vec round_start = th;
        for (int h = 0; h < H; ++h)
          for (size_t k = 0; k < n; ++k) th[k] -= lr * (th[k] - target[k]);
        return round_start;
      };
      // The outer step by hand here, so that training can stop below (the driver's is plain).
      ASSERT_TRUE(s.round([&](int i, Vec& th) { outer[i].step(local_steps(th, c[i]), th, 0.7f, 0.9f); }));
      central_outer.step(local_steps(central, cbar), central, 0.7f, 0.9f);
      if (r == 100) drift_at_100 = s.distance();
    }
    EXPECT_LT(rel_change(s.average(), central), 1e-4) << codec;
    EXPECT_LT(rel_change(central, cbar), 1e-4) << codec;
    EXPECT_LT(s.distance(), 0.5 * drift_at_100) << codec;  // lr fell 3.7x since round 100
    EXPECT_EQ(s.rejected(), 0u) << codec;
    // Training stops: the deltas change character (no outer step to cancel the
    // last mixing), the norm guard may flag a few and those links resync.
    for (int r = 0; r < 100; ++r) ASSERT_TRUE(s.round());
    for (int i = 0; i < P; ++i) EXPECT_LT(rel_change(s.model[i], cbar), 1e-4) << codec << " peer " << i;
  }
}

// (d) Nesterov outer step, by hand: η = 0.7, μ = 0.9.
//   round 1: start (1, 2), θ' (0.5, 2.5): Δ = (0.5, −0.5), m = Δ,
//            θ = start − 0.7·(0.9m + Δ) = (0.335, 2.665)
//   round 2: start (0.335, 2.665), θ' (0.235, 2.665): Δ = (0.1, 0), m = (0.55, −0.45),
//            θ = (0.335 − 0.7·0.595, 2.665 + 0.7·0.405) = (−0.0815, 2.9485)
TEST(OuterOptimizer, NesterovMatchesHandComputedRounds) {
  g::OuterOptimizer opt(2);
  Vec theta{0.5f, 2.5f};
  opt.step(Vec{1.0f, 2.0f}, theta, 0.7f, 0.9f);
  EXPECT_NEAR(theta[0], 0.335f, 1e-6);
  EXPECT_NEAR(theta[1], 2.665f, 1e-6);
  const Vec start = theta;
  theta[0] -= 0.1f;
  opt.step(start, theta, 0.7f, 0.9f);
  EXPECT_NEAR(opt.momentum()[0], 0.55f, 1e-6);
  EXPECT_NEAR(opt.momentum()[1], -0.45f, 1e-6);
  EXPECT_NEAR(theta[0], -0.0815f, 1e-6);
  EXPECT_NEAR(theta[1], 2.9485f, 1e-6);
}

TEST(OuterOptimizer, UnitLrWithoutMomentumIsPlainLocalSgd) {
  g::OuterOptimizer opt(3);
  const Vec start{1, 2, 3}, after{0.5f, -1, 7};
  Vec theta = after;
  opt.step(start, theta, 1.0f, 0.0f);
  EXPECT_EQ(theta, after);
  Vec wrong(2);
  EXPECT_THROW(opt.step(start, wrong, 1.0f, 0.0f), std::invalid_argument);
  EXPECT_THROW(opt.restore(Vec{1, NAN, 0}), std::invalid_argument);
}

// (e) Sequence numbers, snapshots and link changes.
TEST(Consensus, GapAsksForResyncAndASnapshotRepairsTheLink) {
  constexpr size_t n = 300;
  Consensus a(n, config("int8:block=64", 1.0), 1), b(n, config("int8:block=64", 1.0), 2);
  Vec ta = gaussian(n, 1), tb = gaussian(n, 2);
  a.reset_self(ta);
  b.reset_self(tb);
  a.link_up(pid(1), 5);
  b.link_up(pid(0), 5);
  EXPECT_FALSE(b.link_synced(pid(0)));
  uint64_t seq = 0;
  ASSERT_EQ(b.on_delta(pid(0), seq++, a.make_full_snapshot(0)).status, g::ReceiveStatus::snapshot);
  ASSERT_TRUE(std::ranges::equal(*b.link_copy(pid(0)), a.public_copy()));  // bit-identical mirror

  for (uint64_t r = 1; r <= 3; ++r) {
    ta = gaussian(n, 10 + r);
    const g::ReceiveResult res = b.on_delta(pid(0), seq++, a.make_delta(ta, r));
    ASSERT_TRUE(res.accepted) << res.reason;
    ASSERT_TRUE(std::ranges::equal(*b.link_copy(pid(0)), a.public_copy()));
  }
  // A duplicate is ignored and harmless.
  EXPECT_EQ(b.on_delta(pid(0), seq - 1, a.make_delta(ta, 4)).status, g::ReceiveStatus::duplicate);
  // ...but that make_delta moved θ̂_a: the message was lost. The next one shows a gap.
  const g::ReceiveResult gap = b.on_delta(pid(0), seq + 1, a.make_delta(ta, 5));
  EXPECT_EQ(gap.status, g::ReceiveStatus::needs_snapshot);
  EXPECT_TRUE(gap.resync);
  EXPECT_FALSE(b.link_synced(pid(0)));
  EXPECT_EQ(b.counters().gaps, 1u);
  seq += 2;
  // Until the snapshot comes, deltas are dropped and the link does not mix.
  EXPECT_TRUE(b.on_delta(pid(0), seq++, a.make_delta(ta, 6)).resync);
  Vec before = tb;
  EXPECT_EQ(b.mix(tb).links, 0u);
  EXPECT_EQ(tb, before);
  // The snapshot restores the mirror exactly; deltas apply again.
  ASSERT_EQ(b.on_delta(pid(0), seq++, a.make_full_snapshot(7)).status, g::ReceiveStatus::snapshot);
  ASSERT_TRUE(std::ranges::equal(*b.link_copy(pid(0)), a.public_copy()));
  ASSERT_TRUE(b.on_delta(pid(0), seq++, a.make_delta(gaussian(n, 99), 8)).accepted);
  ASSERT_TRUE(std::ranges::equal(*b.link_copy(pid(0)), a.public_copy()));
  EXPECT_EQ(b.mix(tb).links, 1u);
  EXPECT_NE(tb, before);

  // Link down drops the copy; traffic for it is ignored; a new epoch starts over.
  b.link_down(pid(0));
  EXPECT_EQ(b.degree(), 0u);
  EXPECT_EQ(b.on_delta(pid(0), seq++, a.make_delta(ta, 9)).status, g::ReceiveStatus::no_link);
  b.link_up(pid(0), 6);
  EXPECT_TRUE(b.on_delta(pid(0), 0, a.make_delta(ta, 10)).resync);  // its snapshot was lost
  EXPECT_EQ(b.on_delta(pid(0), 1, a.make_full_snapshot(10)).status, g::ReceiveStatus::snapshot);
  ASSERT_TRUE(std::ranges::equal(*b.link_copy(pid(0)), a.public_copy()));
}

// At round 0 every peer starts from the shared initialization: a new link's snapshot is θ̂'s digest.
TEST(Consensus, RoundZeroSnapshotIsADigestOfTheSharedStart) {
  constexpr size_t n = 1000;
  const Vec start = gaussian(n, 1);
  Consensus a(n, config("int8:block=64", 1.0), 1), b(n, config("int8:block=64", 1.0), 2),
      c(n, config("int8:block=64", 1.0), 3);
  a.reset_self(start);
  b.reset_self(start);
  c.reset_self(gaussian(n, 2));  // resumed from its own state
  for (Consensus* x : {&b, &c}) x->link_up(pid(0), 1);
  a.link_up(pid(1), 1);
  const Delta by_digest = a.make_snapshot(0);
  EXPECT_TRUE(by_digest.snapshot);
  EXPECT_TRUE(by_digest.codec_payload.empty());
  EXPECT_EQ(by_digest.state_digest.size(), g::kStateDigestBytes);
  // Same start: the mirror is b's own copy, bit for bit.
  ASSERT_EQ(b.on_delta(pid(0), 0, by_digest).status, g::ReceiveStatus::snapshot);
  EXPECT_TRUE(std::ranges::equal(*b.link_copy(pid(0)), a.public_copy()));
  EXPECT_EQ(b.counters().digests_matched, 1u);
  // Another state: a resync, and the full snapshot that answers it repairs the link.
  const g::ReceiveResult r = c.on_delta(pid(0), 0, by_digest);
  EXPECT_EQ(r.status, g::ReceiveStatus::needs_snapshot);
  EXPECT_TRUE(r.resync);
  ASSERT_EQ(c.on_delta(pid(0), 1, a.make_full_snapshot(0)).status, g::ReceiveStatus::snapshot);
  EXPECT_TRUE(std::ranges::equal(*c.link_copy(pid(0)), a.public_copy()));
  // Once θ̂ moved, or after round 0, snapshots carry the state itself.
  EXPECT_FALSE(a.make_snapshot(1).codec_payload.empty());
  const Delta d = a.make_delta(gaussian(n, 3), 0);
  EXPECT_TRUE(a.make_snapshot(0).state_digest.empty());
  // ...and a receiver that moved no longer matches the start's digest.
  EXPECT_TRUE(b.on_delta(pid(0), 1, d).accepted);
  b.make_delta(gaussian(n, 4), 0);
  EXPECT_EQ(b.on_delta(pid(0), 2, by_digest).status, g::ReceiveStatus::needs_snapshot);
}

// A snapshot sent after this round's delta already holds it: it counts as that round's delta.
TEST(Consensus, SnapshotRoundSaysWhichDeltasItHolds) {
  constexpr size_t n = 64;
  Consensus a(n, config("int8:block=64", 1.0), 1);
  a.reset_self(gaussian(n, 1));
  EXPECT_EQ(g::newest_round(a.make_full_snapshot(4)), 3);  // computing round 4: holds up to round 3
  a.make_delta(gaussian(n, 2), 4);
  EXPECT_EQ(g::newest_round(a.make_full_snapshot(4)), 4);  // waiting to mix round 4: holds it
  EXPECT_EQ(g::newest_round(a.make_full_snapshot(6)), 5);
  Delta d = a.make_delta(gaussian(n, 3), 6);
  EXPECT_EQ(g::newest_round(d), 6);
  a.reset_self(gaussian(n, 4));  // adopted or resumed: the driver's round again
  EXPECT_EQ(g::newest_round(a.make_full_snapshot(2)), 1);
}

TEST(Consensus, MalformedDigestsAreRejected) {
  constexpr size_t n = 64;
  Consensus a(n, config("fp32", 1.0), 1), b(n, config("fp32", 1.0), 2);
  a.reset_self(Vec(n, 1.0f));
  b.reset_self(Vec(n, 1.0f));
  a.link_up(pid(1), 1);
  b.link_up(pid(0), 1);
  uint64_t seq = 0;
  Delta short_digest = a.make_snapshot(0);
  short_digest.state_digest.pop_back();
  Delta with_payload = a.make_snapshot(0);
  with_payload.codec_payload = a.make_full_snapshot(0).codec_payload;
  Delta on_a_delta = a.make_snapshot(0);
  on_a_delta.snapshot = false;
  for (const Delta& bad : {short_digest, with_payload, on_a_delta})
    EXPECT_EQ(b.on_delta(pid(0), seq++, bad).status, g::ReceiveStatus::rejected);
  EXPECT_EQ(b.counters().malformed, 3u);
  EXPECT_FALSE(b.link_synced(pid(0)));
}

// A ResyncRequest travels in the link's sequence too: the delta after it is no gap. (Before
// on_control, every request made the other side see a gap and ask back, one lost delta a round.)
TEST(Consensus, ControlMessagesKeepTheSequence) {
  constexpr size_t n = 128;
  Consensus a(n, config("int8:block=64", 1.0), 1), b(n, config("int8:block=64", 1.0), 2);
  const Vec ta = gaussian(n, 1);
  a.reset_self(ta);
  a.link_up(pid(1), 3);
  b.link_up(pid(0), 3);
  ASSERT_TRUE(b.on_delta(pid(0), 0, a.make_full_snapshot(0)).accepted);
  EXPECT_FALSE(b.on_control(pid(0), 1));  // in sequence
  const g::ReceiveResult r = b.on_delta(pid(0), 2, a.make_delta(gaussian(n, 2), 1));
  EXPECT_TRUE(r.accepted) << r.reason;
  EXPECT_EQ(b.counters().gaps, 0u);
  EXPECT_FALSE(b.on_control(pid(0), 2));  // already seen: ignored
  // A control message after a lost delta reveals the loss: the copy needs a snapshot.
  EXPECT_TRUE(b.on_control(pid(0), 4));
  EXPECT_FALSE(b.link_synced(pid(0)));
  EXPECT_FALSE(b.on_control(pid(7), 0));  // no link
}

TEST(Consensus, MetropolisHastingsWeightsUseBothDegrees) {
  // A star: the centre (degree 3) and three leaves (degree 1): w = 1/(1 + 3) on every edge.
  std::vector<Vec> start;
  for (int i = 0; i < 4; ++i) start.push_back(Vec(4, static_cast<float>(i == 0 ? 4 : 0)));
  RoundNet s(start, murmur::test::plain_round("fp32", 1.0), 9);
  s.set_graph({{0, 1}, {0, 2}, {0, 3}});
  ASSERT_TRUE(s.round());
  EXPECT_FLOAT_EQ(s.model[0][0], 1.0f);  // 4 + 3·(0 − 4)/4
  EXPECT_FLOAT_EQ(s.model[1][0], 1.0f);  // 0 + (4 − 0)/4
  EXPECT_FLOAT_EQ(s.model[1][0] + s.model[2][0] + s.model[3][0] + s.model[0][0], 4.0f);
}

// (f) The guard.
namespace {
struct Pair {
  static constexpr size_t n = 256;
  Consensus a, b;
  uint64_t seq = 0;
  explicit Pair(ConsensusConfig cfg) : a(n, cfg, 1), b(n, cfg, 2) {
    a.reset_self(gaussian(n, 1));
    b.reset_self(gaussian(n, 2));
    a.link_up(pid(1), 1);
    b.link_up(pid(0), 1);
    EXPECT_TRUE(b.on_delta(pid(0), seq++, a.make_full_snapshot(0)).accepted);
  }
  g::ReceiveResult send(const Delta& d) { return b.on_delta(pid(0), seq++, d); }
  // A hand-made delta: q = fp32 payload of x.
  g::ReceiveResult send_raw(std::vector<uint8_t> payload, bool snapshot = false) {
    return send(Delta{.round = seq,
                      .degree = 1,
                      .snapshot = snapshot,
                      .codec_payload = std::move(payload),
                      .state_digest = {}});
  }
};
}  // namespace

TEST(UpdateGuard, MalformedDeltasAreRejectedAndCounted) {
  Pair p(config("fp32", 1.0));
  // NaN: an fp32 payload whose first value is patched to a NaN.
  std::vector<uint8_t> nan = murmur::compress::Encoder("fp32").encode(Vec(Pair::n, 0.1f));
  const float q = NAN;
  std::memcpy(nan.data() + murmur::compress::kHeaderBytes, &q, sizeof q);
  g::ReceiveResult r = p.send_raw(nan);
  EXPECT_EQ(r.status, g::ReceiveStatus::rejected);
  EXPECT_TRUE(r.resync);
  // Wrong size, also as a snapshot (which leaves the link without a copy).
  EXPECT_EQ(p.send_raw(murmur::compress::Encoder("fp32").encode(Vec(Pair::n + 1)), true).status,
            g::ReceiveStatus::rejected);
  // Garbage bytes; a degree nobody can have.
  EXPECT_EQ(p.send_raw({1, 2, 3}).status, g::ReceiveStatus::needs_snapshot);
  EXPECT_EQ(p.b.counters().malformed, 2u);
  Delta bad_degree = p.a.make_full_snapshot(0);
  bad_degree.degree = g::kMaxDegree + 1;
  EXPECT_EQ(p.send(bad_degree).status, g::ReceiveStatus::rejected);
  EXPECT_EQ(p.b.counters().malformed, 3u);
  EXPECT_FALSE(p.b.link_synced(pid(0)));
  EXPECT_TRUE(p.send(p.a.make_full_snapshot(1)).accepted);
}

TEST(UpdateGuard, NormOutlierIsRejectedAfterWarmUp) {
  ConsensusConfig cfg = config("fp32", 1.0);
  cfg.guard = {.factor = 10, .window = 16, .warmup = 4};
  Pair p(cfg);
  Vec theta(p.a.public_copy().begin(), p.a.public_copy().end());
  murmur::SplitMix64 rng(3);
  for (int r = 0; r < 8; ++r) {  // ordinary rounds: deltas of norm about 0.1·√n
    for (float& x : theta) x += static_cast<float>(0.1 * rng.normal());
    ASSERT_TRUE(p.send(p.a.make_delta(theta, static_cast<uint64_t>(r))).accepted);
  }
  Vec huge(Pair::n, 100.0f);  // norm 1600 against a median of about 1.6
  const g::ReceiveResult r = p.send_raw(murmur::compress::Encoder("fp32").encode(huge));
  EXPECT_EQ(r.status, g::ReceiveStatus::outlier);
  EXPECT_TRUE(r.resync);
  EXPECT_EQ(p.b.counters().norm_outliers, 1u);
  EXPECT_EQ(p.b.counters().deltas_applied, 8u);

  // Before any history the prior holds: a delta larger than twice ‖θ̂‖ (about 16 here) is refused, a
  // large but plausible one is not; without the prior, a fresh guard has nothing to compare with.
  Pair fresh(cfg);
  EXPECT_EQ(fresh.send_raw(murmur::compress::Encoder("fp32").encode(huge)).status, g::ReceiveStatus::outlier);
  EXPECT_TRUE(fresh.send(fresh.a.make_full_snapshot(0)).accepted);
  EXPECT_TRUE(fresh.send_raw(murmur::compress::Encoder("fp32").encode(Vec(Pair::n, 1.0f))).accepted);
  cfg.guard.max_relative = 0;
  Pair no_prior(cfg);
  EXPECT_TRUE(no_prior.send_raw(murmur::compress::Encoder("fp32").encode(huge)).accepted);
}

// A snapshot on a link whose copy is fine (nobody asked for it) is judged by the change it makes,
// like a delta: snapshots sent every round cannot move a mirror further than deltas could.
TEST(UpdateGuard, UnaskedForSnapshotsAreBoundedLikeDeltas) {
  Pair p(config("fp32", 1.0));
  Vec theta(p.a.public_copy().begin(), p.a.public_copy().end());
  for (int r = 0; r < 10; ++r) {
    for (float& x : theta) x += 0.01f;
    ASSERT_TRUE(p.send(p.a.make_delta(theta, static_cast<uint64_t>(r))).accepted);
  }
  ASSERT_TRUE(p.send(p.a.make_full_snapshot(10)).accepted);  // the same state: no change
  Vec poison(p.a.public_copy().begin(), p.a.public_copy().end());
  for (float& x : poison) x *= -1000.0f;
  const g::ReceiveResult r = p.send_raw(murmur::compress::Encoder("fp32").encode(poison), true);
  EXPECT_EQ(r.status, g::ReceiveStatus::outlier);
  EXPECT_TRUE(r.resync);
  EXPECT_FALSE(p.b.link_synced(pid(0)));
  // Asked for (the link has no copy now), the whole state is taken: mixing's clipping bounds it.
  EXPECT_TRUE(p.send(p.a.make_full_snapshot(11)).accepted);
}

TEST(UpdateGuard, NormGuardFallsBackToAllLinksForAYoungLink) {
  g::NormGuard guard({.factor = 5, .window = 8, .warmup = 3});
  g::NormHistory old_link = guard.make_history(), young = guard.make_history();
  for (double v : {1.0, 1.2, 0.9, 1.1}) EXPECT_TRUE(guard.admit(v, old_link, 0));
  EXPECT_FALSE(guard.admit(50, young, 0));  // judged against all links' median
  EXPECT_TRUE(guard.admit(4, young, 0));
  EXPECT_FALSE(guard.admit(NAN, old_link, 0));
  EXPECT_EQ(young.count(), 1u);
}

// A Byzantine neighbour sends enormous values every round (as snapshots, which
// skip the norm check). With centered clipping of radius τ, the honest peer's
// mixing step stays within γ·w·τ ≤ τ per round; without it, it is thrown away.
TEST(UpdateGuard, CenteredClippingBoundsAByzantineNeighbour) {
  constexpr double tau = 0.5;
  for (double clip : {tau, 0.0}) {
    // Clipping alone: the guard (which refuses these snapshots) and the strikes (which cut the link)
    // are off.
    g::RoundConfig cfg = murmur::test::plain_round("int8:block=64", 1.0);
    cfg.consensus.aggregation = clip > 0 ? g::Aggregation::clip : g::Aggregation::mean;
    cfg.consensus.clip_radius = clip;
    cfg.consensus.guard.factor = 0;
    cfg.consensus.guard.max_relative = 0;
    cfg.strikes_to_cut = 0;
    std::vector<Vec> start;
    for (int i = 0; i < 4; ++i) start.push_back(gaussian(512, 1100 + static_cast<uint64_t>(i), 0.5 * i, 1.0));
    RoundNet s(start, cfg, 11);
    s.set_graph(ring(4));
    // From now on peer 3 replaces each of its deltas by a snapshot of huge values (one that counts as
    // this round's delta, so nobody waits).
    murmur::SplitMix64 rng(5);
    s.on_wire = [&](RoundNet::Msg& m) {
      const auto* d = std::get_if<Delta>(m.msg.get());
      if (m.from != 3 || d == nullptr || d->snapshot) return true;
      Vec evil(512);
      for (float& x : evil) x = static_cast<float>(1e6 * rng.normal());
      m.msg = std::make_shared<const g::TrainMessage>(
          Delta{.round = d->round + 1,
                .degree = 1,
                .snapshot = true,
                .codec_payload = murmur::compress::Encoder("fp32").encode(evil),
                .state_digest = {}});
      return true;
    };
    double worst = 0;
    for (int r = 0; r < 20; ++r) {
      const std::vector<Vec> before = s.model;
      s.mixes.clear();
      ASSERT_TRUE(s.round());
      for (const auto& [i, m] : s.mixes) {
        if (i == 3) continue;
        if (i != 1) {  // the Byzantine peer's neighbours
          EXPECT_EQ(m.report.clipped > 0, clip > 0);
        }
        worst = std::max(worst, g::l2_distance(s.model[i], before[i]));
      }
    }
    if (clip > 0) {
      EXPECT_LE(worst, tau * (1 + 1e-6));
      EXPECT_GT(s.peers[0].consensus().counters().clipped, 0u);
    } else {
      EXPECT_GT(worst, 1e5);
    }
  }
}

// (g) The codec policy.
TEST(CodecPolicy, PicksTheFinestCodecThatFitsTheUplink) {
  constexpr uint64_t n = 1'000'000;
  const auto ladder = g::parse_codec_ladder(g::kDefaultCodecLadder, n);
  ASSERT_EQ(ladder.size(), 5u);
  EXPECT_EQ(g::payload_bytes(ladder[0], n), 16 + 4 * n);
  EXPECT_EQ(g::payload_bytes(ladder[1], n), 16 + 2 * n);
  EXPECT_EQ(g::payload_bytes(ladder[2], n), 24 + 4 * 15625 + n);      // int8, 64 per block
  EXPECT_EQ(g::payload_bytes(ladder[3], n), 24 + 4 * 15625 + n / 2);  // int4
  EXPECT_EQ(g::payload_bytes(ladder[4], n), 24 + 4 * 3907 + n / 8);   // sign, 256 per block
  // The sizes are what the encoder writes.
  const Vec x = gaussian(n, 1);
  for (const auto& spec : ladder)
    EXPECT_EQ(murmur::compress::Encoder(spec).encode(x).size(), g::payload_bytes(spec, n)) << to_string(spec);

  // 3 neighbours, 1 s per round: fp32 needs 12 MB/s, bf16 6, int8 3.2, int4 1.7, sign 0.4.
  auto pick = [&](double mb_per_s) { return g::choose_codec(ladder, n, 3, mb_per_s * 1e6, 1.0); };
  EXPECT_EQ(pick(100).index, 0u);
  EXPECT_EQ(pick(7).index, 1u);
  EXPECT_EQ(pick(3.3).index, 2u);
  EXPECT_EQ(pick(2).index, 3u);
  EXPECT_EQ(pick(0.5).index, 4u);
  EXPECT_TRUE(pick(0.5).fits);
  const g::CodecChoice starved = pick(0.1);
  EXPECT_EQ(starved.index, 4u);
  EXPECT_FALSE(starved.fits);
  EXPECT_EQ(starved.round_bytes, 3 * g::payload_bytes(ladder[4], n));
  EXPECT_EQ(g::choose_codec(ladder, n, 0, 0, 1).index, 0u);  // nobody to send to

  EXPECT_THROW(g::parse_codec_ladder("int8;fp32", n), std::invalid_argument);  // coarse before fine
  EXPECT_THROW(g::parse_codec_ladder("bf16;powersgd", n), std::invalid_argument);
  EXPECT_THROW(g::parse_codec_ladder("bf16;", n), std::invalid_argument);
  EXPECT_THROW(g::choose_codec(ladder, n, 3, NAN, 1), std::invalid_argument);
}

TEST(CodecPolicy, ConsensusSwitchesCodecBetweenRounds) {
  RoundNet s = swarm(4, 1024, "fp32", 1.0, 12);
  s.set_graph(ring(4));
  const Vec avg0 = s.average();
  for (int r = 0; r < 120; ++r) {
    for (auto& p : s.peers)
      p.consensus().set_codec(murmur::compress::parse_codec_spec(r % 3 == 0 ? "bf16" : "int4"));
    ASSERT_TRUE(s.round());
  }
  EXPECT_LT(s.distance(), 1e-4);
  EXPECT_LT(rel_change(s.average(), avg0), 1e-5);
}

// Checkpointed state: the round, outer momentum and θ̂_i round-trip; bad bytes are refused.
TEST(AlgorithmState, RoundTripsAndRejectsCorruption) {
  const g::AlgorithmState s{.round = 42, .momentum = gaussian(100, 1), .public_copy = gaussian(100, 2)};
  const std::vector<uint8_t> bytes = g::encode_algorithm_state(s);
  EXPECT_EQ(bytes.size(), 32u + 800u);
  const g::AlgorithmState back = g::decode_algorithm_state(bytes, 100);
  EXPECT_EQ(back.round, 42u);
  EXPECT_EQ(back.momentum, s.momentum);
  EXPECT_EQ(back.public_copy, s.public_copy);
  EXPECT_THROW(g::decode_algorithm_state(bytes, 101), std::runtime_error);  // another model
  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 1);
  EXPECT_THROW(g::decode_algorithm_state(cut, 100), std::runtime_error);
  std::vector<uint8_t> extra = bytes;
  extra.push_back(0);
  EXPECT_THROW(g::decode_algorithm_state(extra, 100), std::runtime_error);
  std::vector<uint8_t> nan = bytes;
  const float q = NAN;
  std::memcpy(nan.data() + 32, &q, sizeof q);
  EXPECT_THROW(g::decode_algorithm_state(nan, 100), std::runtime_error);
  std::vector<uint8_t> magic = bytes;
  magic[0] = 'X';
  EXPECT_THROW(g::decode_algorithm_state(magic, 100), std::runtime_error);

  // Only the momentum (a run without gossip), and only the round.
  const auto m_only = g::decode_algorithm_state(g::encode_algorithm_state({7, s.momentum, {}}), 100);
  EXPECT_EQ(m_only.momentum, s.momentum);
  EXPECT_TRUE(m_only.public_copy.empty());
  EXPECT_EQ(g::decode_algorithm_state(g::encode_algorithm_state({7, {}, {}}), 100).round, 7u);

  // Restoring them continues where the run was.
  g::OuterOptimizer opt(100);
  opt.restore(back.momentum);
  EXPECT_TRUE(std::ranges::equal(opt.momentum(), s.momentum));
  Consensus c(100, config("int8", 1.0), 3);
  c.reset_self(back.public_copy);
  EXPECT_TRUE(std::ranges::equal(c.public_copy(), s.public_copy));
}

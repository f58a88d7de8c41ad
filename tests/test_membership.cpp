#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "gossip/membership.h"
#include "tests/fake_network.h"

using namespace murmur::gossip;
using murmur::gossip::testing::FakeNetwork;
using murmur::gossip::testing::FakeNetworkConfig;

namespace {

// The run digest of the default config's identity: messages built by hand carry it to be heard.
const uint64_t kRun = run_digest(RunIdentity{});

// Every live node sees exactly the other live nodes as members (alive or suspect).
bool converged(FakeNetwork& net) {
  const std::vector<size_t> live = net.live_nodes();
  for (size_t i : live) {
    std::set<PeerId> expect, got;
    for (size_t j : live)
      if (j != i) expect.insert(net.id(j));
    for (const PeerInfo& p : net.node(i).members()) got.insert(p.id);
    if (got != expect) return false;
  }
  return true;
}

// Every live node holds `gone` as dead/left or has forgotten it.
bool removed_everywhere(FakeNetwork& net, size_t gone) {
  for (size_t i : net.live_nodes()) {
    auto s = net.node(i).state_of(net.id(gone));
    if (s && (*s == PeerState::alive || *s == PeerState::suspect)) return false;
  }
  return true;
}

// Nodes 1..n-1 join through node 0, one every 50 ms.
void grow(FakeNetwork& net, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    net.add_node();
    if (i > 0) net.join(i, 0);
    net.run_for(50);
  }
}

// Every MemberEvent that declares a node dead or left, by node.
struct DeathLog {
  std::vector<std::pair<size_t, PeerId>> deaths;
  void attach(FakeNetwork& net) {
    net.on_action = [this](size_t at, const Action& a) {
      if (auto* e = std::get_if<MemberEvent>(&a);
          e && (e->state == PeerState::dead || e->state == PeerState::left))
        deaths.emplace_back(at, e->peer.id);
    };
  }
};

}  // namespace

class JoinThroughOneSeed : public ::testing::TestWithParam<size_t> {};

TEST_P(JoinThroughOneSeed, ConvergesToTheFullLiveSet) {
  const size_t n = GetParam();
  FakeNetwork net({});
  grow(net, n);
  EXPECT_TRUE(net.run_until([&] { return converged(net); }, 20000)) << "at " << net.now() << " ms";
  for (size_t i = 0; i < n; ++i) EXPECT_TRUE(net.node(i).joined() || i == 0);
}

INSTANTIATE_TEST_SUITE_P(Sizes, JoinThroughOneSeed, ::testing::Values(8, 32));

TEST(Membership, JoinsThroughAChainOfPeers) {
  FakeNetwork net({});
  for (size_t i = 0; i < 12; ++i) {
    net.add_node();
    if (i > 0) net.join(i, i - 1);
    net.run_for(300);
  }
  EXPECT_TRUE(net.run_until([&] { return converged(net); }, 20000));
}

TEST(Membership, JoinRetriesUntilTheSeedIsUpAndTriesEveryAddress) {
  FakeNetwork net({});
  for (int i = 0; i < 4; ++i) net.add_node();
  net.crash(0);
  net.join(3, 0);  // a dead seed and a live one: the live one answers
  net.join(3, 1);
  net.join(2, 0);  // only the dead seed: retried until it comes up
  net.run_for(3000);
  EXPECT_FALSE(net.node(2).joined());
  net.restart(0, 1);
  EXPECT_TRUE(net.run_until([&] { return converged(net); }, 20000));
}

TEST(Membership, CrashedPeersAreRemovedEverywhereInBoundedTime) {
  FakeNetwork net({});
  grow(net, 16);
  ASSERT_TRUE(net.run_until([&] { return converged(net); }, 20000));
  net.run_for(3000);
  net.crash(4);
  net.crash(11);
  const Millis crashed_at = net.now();
  ASSERT_TRUE(
      net.run_until([&] { return removed_everywhere(net, 4) && removed_everywhere(net, 11); }, 15000));
  const Millis took = net.now() - crashed_at;
  RecordProperty("removal_ms", static_cast<int>(took));
  // Defaults: first probe within ~1 period, +1 period, +suspicion 2 s, + spread (median ~3.9 s).
  EXPECT_LE(took, 7000);
  for (size_t i : net.live_nodes())
    for (const Neighbour& l : net.node(i).links()) {
      EXPECT_NE(l.peer.id, net.id(4));
      EXPECT_NE(l.peer.id, net.id(11));
    }
  EXPECT_TRUE(converged(net));
  // Tombstones expire: the dead are eventually forgotten, not kept forever.
  net.run_for(MembershipConfig{}.dead_retention + 1000);
  for (size_t i : net.live_nodes()) EXPECT_FALSE(net.node(i).state_of(net.id(4)));
}

TEST(Membership, RestartedPeerIsReadmittedWithItsNewIncarnation) {
  FakeNetwork net({});
  grow(net, 10);
  ASSERT_TRUE(net.run_until([&] { return converged(net); }, 20000));
  // Restart after the swarm declared it dead, and one restarting before anyone noticed.
  net.crash(3);
  ASSERT_TRUE(net.run_until([&] { return removed_everywhere(net, 3); }, 15000));
  net.restart(3, 5);
  net.crash(7);
  net.run_for(100);
  net.restart(7, 0);
  auto readmitted = [&] {
    for (size_t i : net.live_nodes())
      for (size_t r : {3, 7})
        if (i != r && (net.node(i).state_of(net.id(r)) != PeerState::alive ||
                       net.node(i).info_of(net.id(r))->incarnation < 2))
          return false;
    return converged(net);
  };
  EXPECT_TRUE(net.run_until(readmitted, 20000));
}

TEST(Membership, GracefulLeaveMarksThePeerLeftWithoutSuspicion) {
  FakeNetwork net({});
  grow(net, 8);
  ASSERT_TRUE(net.run_until([&] { return converged(net); }, 20000));
  net.run_for(5000);
  const auto suspicions_before = [&] {
    uint64_t s = 0;
    for (size_t i : net.live_nodes()) s += net.node(i).counters().suspicions;
    return s;
  }();
  net.leave(2);
  EXPECT_TRUE(net.run_until(
      [&] {
        for (size_t i : net.live_nodes())
          if (net.node(i).state_of(net.id(2)) != PeerState::left) return false;
        return true;
      },
      1000));
  uint64_t after = 0;
  for (size_t i : net.live_nodes()) {
    after += net.node(i).counters().suspicions;
    for (const Neighbour& l : net.node(i).links()) EXPECT_NE(l.peer.id, net.id(2));
  }
  EXPECT_EQ(after, suspicions_before);
}

TEST(Membership, NoFalseSuspicionWithoutLoss) {
  FakeNetwork net({});
  DeathLog log;
  log.attach(net);
  grow(net, 32);
  ASSERT_TRUE(net.run_until([&] { return converged(net); }, 20000));
  net.run_for(120000);
  for (size_t i = 0; i < net.size(); ++i) EXPECT_EQ(net.node(i).counters().suspicions, 0u) << i;
  EXPECT_TRUE(log.deaths.empty());
  EXPECT_TRUE(converged(net));
}

TEST(Membership, TenPercentLossConvergesAndKillsNoLivePeer) {
  FakeNetworkConfig cfg;
  cfg.loss = 0.10;
  cfg.seed = 7;
  FakeNetwork net(cfg);
  DeathLog log;
  log.attach(net);
  grow(net, 32);
  EXPECT_TRUE(net.run_until([&] { return converged(net); }, 30000));
  net.run_for(60000);
  EXPECT_TRUE(log.deaths.empty()) << log.deaths.size() << " live peers declared dead";
  EXPECT_TRUE(converged(net));
  uint64_t suspicions = 0, refutations = 0;
  for (size_t i = 0; i < net.size(); ++i) {
    suspicions += net.node(i).counters().suspicions;
    refutations += net.node(i).counters().refutations;
  }
  RecordProperty("suspicions", static_cast<int>(suspicions));
  RecordProperty("refutations", static_cast<int>(refutations));
}

TEST(Membership, PartitionedSidesRemergeAfterHealing) {
  FakeNetwork net({});
  grow(net, 16);
  ASSERT_TRUE(net.run_until([&] { return converged(net); }, 20000));
  std::vector<int> groups(16);
  for (size_t i = 0; i < 16; ++i) groups[i] = i % 2;
  net.partition(groups);
  // Each side declares the other dead.
  ASSERT_TRUE(net.run_until(
      [&] {
        for (size_t i = 0; i < 16; ++i)
          for (size_t j = 0; j < 16; ++j)
            if (groups[i] != groups[j] && net.node(i).state_of(net.id(j)) != PeerState::dead) return false;
        return true;
      },
      20000));
  net.heal();
  const Millis healed_at = net.now();
  EXPECT_TRUE(net.run_until(
      [&] {
        if (!converged(net)) return false;
        for (size_t i = 0; i < 16; ++i)
          for (const PeerInfo& p : net.node(i).members())
            if (net.node(i).state_of(p.id) != PeerState::alive) return false;
        return true;
      },
      30000));
  RecordProperty("remerge_ms", static_cast<int>(net.now() - healed_at));
}

TEST(Membership, LinksAreSymmetricWithinDegreeBoundsAndResampled) {
  FakeNetworkConfig cfg;
  cfg.membership.link_lifetime = 5000;
  FakeNetwork net(cfg);
  std::set<std::pair<size_t, uint64_t>> epochs;  // (node, epoch) of every LinkUp
  std::set<std::pair<size_t, size_t>> pairs;
  net.on_action = [&](size_t at, const Action& a) {
    if (auto* up = std::get_if<LinkUp>(&a)) {
      epochs.insert({at, up->epoch});
      pairs.insert({at, net.index_of(up->peer.id)});
    }
  };
  const size_t n = 24;
  grow(net, n);
  ASSERT_TRUE(net.run_until([&] { return converged(net); }, 20000));
  net.run_for(5000);
  const MembershipConfig& mc = cfg.membership;
  size_t samples = 0, below_target = 0;
  std::map<std::tuple<size_t, size_t, uint64_t>, Millis> one_sided_since;
  const Millis handshake_bound = 2 * cfg.max_delay + 2 * cfg.tick;
  for (int step = 0; step < 600; ++step) {  // 60 s sampled every 100 ms
    net.run_for(100);
    std::map<std::tuple<size_t, size_t, uint64_t>, Millis> still;
    for (size_t a = 0; a < n; ++a) {
      const auto links = net.node(a).links();
      ++samples;
      ASSERT_LE(links.size(), static_cast<size_t>(mc.max_degree));
      if (links.size() < static_cast<size_t>(mc.target_degree)) ++below_target;
      for (const Neighbour& l : links) {
        const size_t b = net.index_of(l.peer.id);
        const auto theirs = net.node(b).links();
        const bool mutual = std::any_of(theirs.begin(), theirs.end(), [&](const Neighbour& o) {
          return o.peer.id == net.id(a) && o.epoch == l.epoch;
        });
        if (mutual) continue;
        // One side only while the handshake or the close is in flight.
        const auto key = std::make_tuple(a, b, l.epoch);
        const Millis since = one_sided_since.count(key) ? one_sided_since[key] : net.now();
        still[key] = since;
        EXPECT_LE(net.now() - since, handshake_bound) << a << " -> " << b;
      }
    }
    one_sided_since = std::move(still);
  }
  // Brief dips below target while a closed link is replaced; rare.
  EXPECT_LT(below_target * 50, samples) << below_target << " of " << samples;
  // Re-sampling: with a 5 s mean lifetime each node saw many distinct neighbours.
  for (size_t a = 0; a < n; ++a) {
    size_t distinct = 0;
    for (const auto& [x, y] : pairs) distinct += x == a;
    EXPECT_GE(distinct, static_cast<size_t>(mc.target_degree) * 3) << a;
  }
  EXPECT_GT(epochs.size(), n * 10);
}

TEST(Membership, SimultaneousLinkRequestsResolveToTheSmallerIdsLink) {
  MembershipConfig cfg;
  cfg.target_degree = 1;
  cfg.max_degree = 2;
  Membership a({PeerId{1}, "a", 1}, cfg, 1), b({PeerId{2}, "b", 1}, cfg, 2);
  // Introduce them (Hello/Welcome), then let both tick at once so each asks the other.
  a.on_message(b.self().id, Hello{b.self()}, 0);
  b.on_message(a.self().id, Welcome{a.self(), {}}, 0);
  a.take_actions();
  b.take_actions();
  a.tick(1000);
  b.tick(1000);
  auto requests = [](Membership& m) {
    std::vector<LinkRequest> out;
    for (Action& x : m.take_actions())
      if (auto* s = std::get_if<SendTo>(&x))
        if (auto* r = std::get_if<LinkRequest>(&s->msg)) out.push_back(*r);
    return out;
  };
  auto from_a = requests(a), from_b = requests(b);
  ASSERT_EQ(from_a.size(), 1u);
  ASSERT_EQ(from_b.size(), 1u);
  a.on_message(b.self().id, from_b[0], 1010);  // a (smaller id) rejects b's request
  b.on_message(a.self().id, from_a[0], 1010);  // b accepts a's and drops its own
  for (Action& x : b.take_actions())
    if (auto* s = std::get_if<SendTo>(&x)) a.on_message(b.self().id, s->msg, 1020);
  for (Action& x : a.take_actions())
    if (auto* s = std::get_if<SendTo>(&x)) b.on_message(a.self().id, s->msg, 1030);
  ASSERT_EQ(a.links().size(), 1u);
  ASSERT_EQ(b.links().size(), 1u);
  EXPECT_EQ(a.links()[0].epoch, from_a[0].link_epoch);
  EXPECT_EQ(b.links()[0].epoch, from_a[0].link_epoch);
}

TEST(Membership, SurvivesHostileMessageSequencesWithinBounds) {
  MembershipConfig cfg;
  cfg.max_members = 50;
  Membership m({PeerId{9}, "self", 5}, cfg, 3);
  murmur::SplitMix64 rng(11);
  auto peer = [&] {
    PeerInfo p;
    p.id[0] = static_cast<uint8_t>(rng.below(200));
    p.id[1] = static_cast<uint8_t>(rng.below(2));
    const uint64_t len = rng.below(4);  // empty, normal, too long
    p.addr = len == 0 ? "" : len == 3 ? std::string(kMaxAddrLen + 1, 'x') : "tcp://h:" + std::to_string(len);
    p.incarnation = rng.below(4) == 0 ? ~uint64_t{0} : rng.below(6);
    return p;
  };
  auto peers = [&] {
    std::vector<PeerInfo> v(rng.below(kMaxPeersPerMessage * 2));
    for (auto& p : v) p = peer();
    return v;
  };
  auto updates = [&] {
    std::vector<MemberUpdate> v(rng.below(kMaxPeersPerMessage * 2));
    for (auto& u : v) u = {peer(), static_cast<PeerState>(rng.below(4))};
    return v;
  };
  auto digest = [&] { return rng.below(8) == 0 ? rng.next() : kRun; };  // now and then of another run
  Millis now = 0;
  for (int i = 0; i < 20000; ++i) {
    const PeerId from = rng.below(8) == 0 ? m.self().id : peer().id;
    const uint64_t x = rng.below(8);
    Message msg;
    switch (rng.below(13)) {
      case 0:
        msg = Hello{rng.below(2) ? PeerInfo{from, "tcp://x", x} : peer(), RunIdentity{.seed = x / 4}};
        break;
      case 1:
        msg = Welcome{rng.below(2) ? PeerInfo{from, "tcp://x", x} : peer(), peers()};
        break;
      case 2:
        msg = Shuffle{peers(), rng.below(2) == 0, digest()};
        break;
      case 3:
        msg = Ping{x, updates(), digest()};
        break;
      case 4:
        msg = Ack{x, peer().id, updates(), digest()};
        break;
      case 5:
        msg = PingReq{x, peer()};
        break;
      case 6:
        msg = LinkRequest{x, static_cast<uint32_t>(rng.next()), digest()};
        break;
      case 7:
        msg = LinkAccept{x, 3};
        break;
      case 8:
        msg = LinkReject{x};
        break;
      case 9:
        msg = LinkClose{x};
        break;
      case 10:
        msg = Payload{x, 0, 0, 1, {}};
        break;
      case 11:
        msg = Refusal{RunIdentity{.seed = x / 4}};
        break;
      default:
        msg = Bye{x};
        break;
    }
    m.on_message(from, msg, now);
    if (i % 7 == 0) m.tick(now += 37);
    for (const Action& a : m.take_actions()) {
      if (auto* s = std::get_if<SendTo>(&a)) {
        ASSERT_NE(s->to.id, m.self().id);
        ASSERT_LE(s->to.addr.size(), kMaxAddrLen);  // empty: an outbound-only peer, over its connection
        if (auto* p = std::get_if<Ping>(&s->msg)) {
          ASSERT_LE(p->updates.size(), static_cast<size_t>(cfg.max_piggyback));
        }
        if (auto* w = std::get_if<Welcome>(&s->msg)) {
          ASSERT_LE(w->sample.size(), kMaxPeersPerMessage);
        }
      }
    }
    ASSERT_LE(m.members().size(), cfg.max_members);
    ASSERT_LE(m.degree(), static_cast<size_t>(cfg.max_degree));
  }
  m.leave(now);
  m.take_actions();
  m.on_message(PeerId{1}, Hello{{PeerId{1}, "a", 1}}, now);
  m.tick(now + 1000);
  EXPECT_TRUE(m.take_actions().empty());  // a peer that left stays silent
}

// -- an admitted neighbour that lies ---------------------------------------------------------------

namespace {

constexpr uint64_t kTop = ~uint64_t{0};

// The messages `m` sent to `to` since its actions were last taken; every other action is dropped.
std::vector<Message> sent_to(Membership& m, const PeerId& to) {
  std::vector<Message> out;
  for (Action& a : m.take_actions())
    if (auto* s = std::get_if<SendTo>(&a); s && s->to.id == to) out.push_back(std::move(s->msg));
  return out;
}

// Delivers every message `from` sent to `to` (in order), at `now`.
void deliver(Membership& from, Membership& to, Millis now) {
  for (const Message& msg : sent_to(from, to.self().id)) to.on_message(from.self().id, msg, now);
}

PeerInfo at(const PeerInfo& p, uint64_t incarnation, std::string addr = "") {
  return {p.id, addr.empty() ? p.addr : std::move(addr), incarnation};
}

// `a` and `x` know each other first-hand; `a` also knows the liar (an admitted neighbour).
struct Trio {
  MembershipConfig cfg;
  Membership a{{PeerId{1}, "tcp://a:1", 10}, cfg, 1};
  Membership x{{PeerId{2}, "tcp://x:1", 20}, cfg, 2};
  PeerInfo liar{PeerId{3}, "tcp://liar:1", 30};
  Trio() {
    a.on_message(x.self().id, Hello{x.self()}, 0);
    a.on_message(liar.id, Hello{liar}, 0);
    x.on_message(a.self().id, Welcome{a.self(), {}}, 0);
    a.take_actions();
    x.take_actions();
  }
  void lie_to_a(const std::vector<MemberUpdate>& claims, Millis now) {
    Ping p{0, {{liar, PeerState::alive}}, kRun};
    for (const MemberUpdate& c : claims) p.updates.push_back(c);
    a.on_message(liar.id, p, now);
  }
};

}  // namespace

TEST(MembershipHostile, ThirdPartyDeathClaimAtTopIncarnationNeitherEvictsNorBlocksRefutation) {
  Trio t;
  const PeerInfo x = t.x.self();
  // The reported attack: "x is dead at 2^64 - 1". Absurd incarnations are dropped outright.
  t.lie_to_a({{at(x, kTop), PeerState::dead}}, 100);
  EXPECT_EQ(t.a.state_of(x.id), PeerState::alive);
  EXPECT_EQ(t.a.info_of(x.id)->incarnation, x.incarnation);
  EXPECT_TRUE(sent_to(t.a, x.id).empty());
  // Within the bound, a third party's death claim only starts a suspicion, at the incarnation we
  // hold (so x can refute it), and we ask x at once.
  t.lie_to_a({{at(x, Membership::kMaxIncarnation, "tcp://elsewhere:1"), PeerState::dead}}, 200);
  EXPECT_EQ(t.a.state_of(x.id), PeerState::suspect);
  EXPECT_EQ(t.a.info_of(x.id)->incarnation, x.incarnation);
  EXPECT_EQ(t.a.info_of(x.id)->addr, x.addr);
  deliver(t.a, t.x, 220);  // the Ping tells x it is suspected at 20: x refutes with 21
  EXPECT_EQ(t.x.self().incarnation, x.incarnation + 1);
  deliver(t.x, t.a, 240);  // its Ack, x's own word, clears the suspicion
  EXPECT_EQ(t.a.state_of(x.id), PeerState::alive);
  EXPECT_EQ(t.a.info_of(x.id)->incarnation, x.incarnation + 1);
  // Nothing is pending: x stays alive however long we wait (no tombstone, no eviction).
  t.a.tick(200 + t.cfg.suspicion_timeout + 10);
  EXPECT_EQ(t.a.state_of(x.id), PeerState::alive);
}

TEST(MembershipHostile, AThirdPartysDeathClaimGoesThroughSuspicion) {
  Trio t;
  const PeerInfo x = t.x.self();
  t.lie_to_a({{x, PeerState::left}}, 100);  // "left" is a death claim too
  EXPECT_EQ(t.a.state_of(x.id), PeerState::suspect);
  // x does not answer (here it really is gone): dead after the usual suspicion timeout, not before.
  const Millis deadline = 100 + t.cfg.suspicion_timeout;
  for (Millis now = 110; now < deadline; now += 10) {
    t.a.tick(now);
    t.lie_to_a({{x, PeerState::dead}}, now);  // repeating the claim does not hurry it
    t.a.take_actions();
    ASSERT_EQ(t.a.state_of(x.id), PeerState::suspect) << now;
  }
  t.a.tick(deadline);
  EXPECT_EQ(t.a.state_of(x.id), PeerState::dead);
}

TEST(MembershipHostile, HearsayMovesNoAddressAndNoIncarnationBeyondOneAboveThePeersWord) {
  Trio t;
  const PeerInfo x = t.x.self();
  // One above what x told us is what a refutation needs: taken, but never a new address.
  t.lie_to_a({{at(x, x.incarnation + 1, "tcp://liar:2"), PeerState::alive}}, 100);
  EXPECT_EQ(t.a.info_of(x.id), at(x, x.incarnation + 1));
  EXPECT_EQ(t.a.state_of(x.id), PeerState::alive);
  EXPECT_TRUE(sent_to(t.a, x.id).empty());
  // Beyond that, nothing changes: we ask x itself instead.
  t.lie_to_a({{at(x, x.incarnation + 2), PeerState::alive}, {at(x, kTop - 1), PeerState::alive}}, 110);
  EXPECT_EQ(t.a.info_of(x.id), at(x, x.incarnation + 1));
  EXPECT_EQ(sent_to(t.a, x.id).size(), 1u);
  // A suspicion at the incarnation we hold: we ask x, and the Ping is lost.
  t.lie_to_a({{at(x, x.incarnation + 1), PeerState::suspect}}, 200);
  EXPECT_EQ(t.a.state_of(x.id), PeerState::suspect);
  EXPECT_EQ(sent_to(t.a, x.id).size(), 1u);
  // Hearsay that x refuted it beyond the bound does not clear it; it makes us ask x, at its address.
  t.lie_to_a({{at(x, x.incarnation + 2, "tcp://liar:2"), PeerState::alive}}, 600);
  EXPECT_EQ(t.a.state_of(x.id), PeerState::suspect);
  std::vector<SendTo> asks;
  for (Action& act : t.a.take_actions())
    if (auto* s = std::get_if<SendTo>(&act); s && s->to.id == x.id) asks.push_back(*s);
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].to.addr, x.addr);
  // x refutes the suspicion at one above its incarnation, and its Ack clears it.
  t.x.on_message(t.a.self().id, asks[0].msg, 620);
  EXPECT_EQ(t.x.self().incarnation, x.incarnation + 2);
  deliver(t.x, t.a, 640);
  EXPECT_EQ(t.a.state_of(x.id), PeerState::alive);
  EXPECT_EQ(t.a.info_of(x.id), at(x, x.incarnation + 2));
}

TEST(MembershipHostile, ALegitimateRefutationStillSpreadsThroughRelays) {
  MembershipConfig cfg;
  Membership a({PeerId{1}, "tcp://a:1", 10}, cfg, 1), r({PeerId{4}, "tcp://r:1", 40}, cfg, 4);
  Membership x({PeerId{2}, "tcp://x:1", 20}, cfg, 2);
  for (Membership* m : {&a, &r}) {
    m->on_message(x.self().id, Hello{x.self()}, 0);
    x.on_message(m->self().id, Welcome{m->self(), {}}, 0);
  }
  a.on_message(r.self().id, Hello{r.self()}, 0);
  r.on_message(a.self().id, Welcome{a.self(), {}}, 0);
  for (Membership* m : {&a, &r, &x}) m->take_actions();
  // Both suspect x (their probes were lost); a's Ping to x is lost too, r's arrives.
  a.on_message(r.self().id, Ping{0, {{r.self(), PeerState::alive}, {x.self(), PeerState::suspect}}, kRun},
               100);
  ASSERT_EQ(a.state_of(x.self().id), PeerState::suspect);
  a.take_actions();
  x.on_message(r.self().id,
               Ping{0, {{r.self(), PeerState::alive}, {at(x.self(), 20), PeerState::suspect}}, kRun}, 110);
  ASSERT_EQ(x.self().incarnation, 21u);
  deliver(x, r, 120);
  ASSERT_EQ(r.state_of(x.self().id), PeerState::alive);
  // r spreads x's refutation; a takes it second-hand, as it is one above what x told a.
  r.on_message(a.self().id, Ping{0, {{a.self(), PeerState::alive}}, kRun}, 500);  // r piggybacks on its Ack
  deliver(r, a, 510);
  EXPECT_EQ(a.state_of(x.self().id), PeerState::alive);
  EXPECT_EQ(a.info_of(x.self().id)->incarnation, 21u);
}

TEST(MembershipHostile, ClaimsAboutSelfAboveItsIncarnationAreNotObeyed) {
  Trio t;
  const uint64_t own = t.x.self().incarnation;
  for (uint64_t inc : {own + 2, own + 1000, Membership::kMaxIncarnation, kTop - 1, kTop})
    for (PeerState s : {PeerState::suspect, PeerState::dead, PeerState::left})
      t.x.on_message(t.liar.id, Ping{0, {{t.liar, PeerState::alive}, {at(t.x.self(), inc), s}}, kRun}, 100);
  EXPECT_EQ(t.x.self().incarnation, own);
  EXPECT_EQ(t.x.counters().refutations, 0u);
  // A claim about the current incarnation, or the one above (as far as hearsay lifts a peer), is
  // refuted.
  t.x.on_message(t.liar.id, Ping{0, {{at(t.x.self(), own), PeerState::dead}}, kRun}, 200);
  EXPECT_EQ(t.x.self().incarnation, own + 1);
  t.x.on_message(t.liar.id, Ping{0, {{at(t.x.self(), own + 2), PeerState::suspect}}, kRun}, 300);
  EXPECT_EQ(t.x.self().incarnation, own + 3);
}

TEST(MembershipHostile, APeersOwnWordReplacesHearsayAboutIt) {
  Trio t;
  const PeerInfo y{PeerId{5}, "tcp://y:1", 50};
  // Death claims do not introduce a peer; an alive claim does, with whatever the liar says.
  t.lie_to_a({{y, PeerState::dead}, {at(y, 60), PeerState::suspect}}, 100);
  EXPECT_FALSE(t.a.state_of(y.id));
  t.lie_to_a({{at(y, Membership::kMaxIncarnation, "tcp://nowhere:1"), PeerState::alive}}, 200);
  EXPECT_EQ(t.a.info_of(y.id)->addr, "tcp://nowhere:1");
  // y speaks for itself: its incarnation and address win over the hearsay, although lower.
  t.a.on_message(y.id, Ping{0, {{y, PeerState::alive}}, kRun}, 300);
  EXPECT_EQ(t.a.info_of(y.id), y);
  EXPECT_EQ(t.a.state_of(y.id), PeerState::alive);
  // From now on hearsay moves it no more than any first-hand member.
  t.lie_to_a({{at(y, 70, "tcp://nowhere:1"), PeerState::alive}}, 400);
  EXPECT_EQ(t.a.info_of(y.id), y);
}

TEST(MembershipHostile, ALiarInTheSwarmEvictsNobodyAndHidesNoDeath) {
  FakeNetwork net({});
  DeathLog log;
  log.attach(net);
  const size_t n = 12, liar = 0, victim = 5;
  grow(net, n);
  ASSERT_TRUE(net.run_until([&] { return converged(net); }, 20000));
  const uint64_t start_incarnation = net.node(victim).self().incarnation;
  // For 30 s the liar tells everyone, every 100 ms, that the victim is dead (at the top incarnation
  // and at its current one), suspect, and alive at higher incarnations elsewhere.
  auto lie = [&] {
    const PeerInfo v = net.node(victim).self();
    for (size_t to = 0; to < n; ++to) {
      if (to == liar) continue;
      net.send_as(liar, to,
                  Ping{0,
                       {{net.node(liar).self(), PeerState::alive},
                        {at(v, kTop), PeerState::dead},
                        {at(v, Membership::kMaxIncarnation), PeerState::dead},
                        {v, PeerState::dead},
                        {v, PeerState::suspect},
                        {at(v, v.incarnation + 1, "sim://nowhere"), PeerState::alive}},
                       kRun});
    }
  };
  for (int i = 0; i < 300; ++i) {
    lie();
    net.run_for(100);
  }
  for (const auto& [who, whom] : log.deaths) EXPECT_NE(whom, net.id(victim)) << "declared dead by " << who;
  EXPECT_TRUE(converged(net));
  // Each lie lifts the victim's incarnation by at most two: it stays far from any bound.
  EXPECT_LE(net.node(victim).self().incarnation, start_incarnation + 600);
  for (size_t i : net.live_nodes()) {
    if (i != victim) {
      EXPECT_EQ(net.node(i).info_of(net.id(victim))->addr, net.node(victim).self().addr);
    }
  }
  // When the victim really dies, the liar's alive claims do not keep it in anyone's view.
  net.crash(victim);
  const Millis crashed_at = net.now();
  bool removed = false;
  while (!removed && net.now() < crashed_at + 15000) {
    lie();
    removed = net.run_until([&] { return removed_everywhere(net, victim); }, 100);
  }
  EXPECT_TRUE(removed);
  RecordProperty("removal_ms", static_cast<int>(net.now() - crashed_at));
  EXPECT_LE(net.now() - crashed_at, 7000);
}

TEST(Membership, RejectsBadConfig) {
  MembershipConfig c;
  c.target_degree = 6;
  EXPECT_THROW(validate(c), std::invalid_argument);
  c = {};
  c.probe_timeout = c.probe_interval;
  EXPECT_THROW(validate(c), std::invalid_argument);
  EXPECT_THROW(Membership({PeerId{}, "", 0}, MembershipConfig{}, 1), std::invalid_argument);
  c = {};
  c.run.algo = std::string(kMaxAlgoLen + 1, 'a');  // others could not decode our Hello
  EXPECT_THROW(validate(c), std::invalid_argument);
  c = {};
  c.run.outer_lr = std::nan("");
  EXPECT_THROW(validate(c), std::invalid_argument);
  EXPECT_NO_THROW(validate(MembershipConfig{}));
}

// -- peers of another run ----------------------------------------------------------------------------

namespace {

RunIdentity small_run() { return {4, 4, 128, 64, 256, 1, "gossip", 50, 125, 16, 0.7, 0.9, true}; }

MembershipConfig config_of(const RunIdentity& run) {
  MembershipConfig c;
  c.run = run;
  return c;
}

template <class T>
std::vector<T> actions_of(const std::vector<Action>& actions) {
  std::vector<T> out;
  for (const Action& a : actions)
    if (auto* x = std::get_if<T>(&a)) out.push_back(*x);
  return out;
}

}  // namespace

TEST(MembershipRuns, AHelloOfAnotherRunIsRefusedNamingEveryDifferenceAndTheJoinerGivesUp) {
  RunIdentity other = small_run();
  other.n_layer = 2;
  other.seed = 7;
  Membership a({PeerId{1}, "tcp://a:1", 1}, config_of(small_run()), 1);
  Membership b({PeerId{2}, "tcp://b:1", 1}, config_of(other), 2);
  b.join("tcp://a:1", 0);
  std::vector<Action> out = b.take_actions();
  const auto hellos = actions_of<SendToAddr>(out);
  ASSERT_EQ(hellos.size(), 1u);
  a.on_message(b.self().id, hellos[0].msg, 10);
  out = a.take_actions();
  // a answers with its identity only: no Welcome, nobody admitted, nothing spread.
  const auto sends = actions_of<SendTo>(out);
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0].to, b.self());
  ASSERT_TRUE(std::holds_alternative<Refusal>(sends[0].msg));
  EXPECT_EQ(std::get<Refusal>(sends[0].msg).run, small_run());
  const auto refused = actions_of<OtherRun>(out);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_FALSE(refused[0].refused_us);
  EXPECT_EQ(refused[0].peer, b.self().id);
  EXPECT_EQ(refused[0].differences, "model n_layer: 4 here, 2 there; seed: 1 here, 7 there");
  EXPECT_TRUE(actions_of<MemberEvent>(out).empty());
  EXPECT_FALSE(a.state_of(b.self().id));
  EXPECT_EQ(a.counters().other_run, 1u);
  // b hears why, and with its only join address refused it gives up at once.
  b.on_message(a.self().id, sends[0].msg, 20);
  out = b.take_actions();
  const auto told = actions_of<OtherRun>(out);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_TRUE(told[0].refused_us);
  EXPECT_EQ(told[0].differences, "model n_layer: 2 here, 4 there; seed: 7 here, 1 there");
  const auto failed = actions_of<JoinRefused>(out);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].by, a.self().id);
  EXPECT_EQ(failed[0].differences, told[0].differences);
  EXPECT_FALSE(b.joined());
  EXPECT_TRUE(b.members().empty());
  // No more Hellos, and the failure is reported once.
  for (Millis t = 100; t < 10000; t += 100) b.tick(t);
  out = b.take_actions();
  EXPECT_TRUE(actions_of<SendToAddr>(out).empty());
  EXPECT_TRUE(actions_of<JoinRefused>(out).empty());
  // Every field that can differ is named.
  const RunIdentity all{2, 2, 64, 32, 50257, 7, "diloco", 20, 0, 0, 1.0, 0.0, false};
  EXPECT_EQ(run_differences(small_run(), all),
            "model n_layer: 4 here, 2 there; model n_head: 4 here, 2 there; model n_embd: 128 here, 64 "
            "there; model n_ctx: 64 here, 32 there; model vocab: 256 here, 50257 there; seed: 1 here, 7 "
            "there; algo: gossip here, diloco there; inner steps: 50 here, 20 there; sync warm-up steps: 125 "
            "here, 0 there; sync warm-up inner steps: 16 here, 0 there; outer lr: 0.7 here, 1 there; outer "
            "momentum: 0.9 here, 0 there; outer step: after the mix here, before the mix there");
  EXPECT_EQ(run_differences(small_run(), small_run()), "");
}

TEST(MembershipRuns, MessagesOfAnotherRunIntroduceNoPeerAndOpenNoLink) {
  Membership a({PeerId{1}, "tcp://a:1", 1}, config_of(small_run()), 1);
  const uint64_t ours = run_digest(small_run());
  RunIdentity other_run = small_run();
  other_run.outer_momentum = 0.8;
  const uint64_t theirs = run_digest(other_run);
  const PeerInfo stranger{PeerId{5}, "tcp://s:1", 3}, friend_{PeerId{6}, "tcp://f:1", 3};
  a.on_message(stranger.id, Ping{1, {{stranger, PeerState::alive}}, theirs}, 0);
  a.on_message(stranger.id, Ack{1, stranger.id, {{stranger, PeerState::alive}}, theirs}, 0);
  a.on_message(stranger.id, Shuffle{{stranger}, false, theirs}, 0);
  a.on_message(stranger.id, Welcome{stranger, {stranger}, other_run}, 0);
  EXPECT_FALSE(a.state_of(stranger.id));
  EXPECT_TRUE(actions_of<SendTo>(a.take_actions()).empty());
  EXPECT_EQ(a.counters().other_run, 4u);
  // A member's LinkRequest with another run's digest is dropped unanswered; with ours it is accepted.
  a.on_message(friend_.id, Hello{friend_, small_run()}, 0);
  a.take_actions();
  a.on_message(friend_.id, LinkRequest{11, 1, theirs}, 10);
  std::vector<Action> out = a.take_actions();
  EXPECT_TRUE(actions_of<SendTo>(out).empty());
  EXPECT_TRUE(a.links().empty());
  a.on_message(friend_.id, LinkRequest{12, 1, ours}, 20);
  out = a.take_actions();
  ASSERT_EQ(a.links().size(), 1u);
  EXPECT_EQ(a.links()[0].epoch, 12u);
  // What a sends carries its digest.
  for (Millis t = 0; t < 3000; t += 10) a.tick(t);
  out = a.take_actions();
  size_t stamped = 0;
  for (const SendTo& s : actions_of<SendTo>(out)) {
    std::visit(
        [&](const auto& m) {
          if constexpr (requires { m.run_digest; }) {
            EXPECT_EQ(m.run_digest, ours);
            ++stamped;
          }
        },
        s.msg);
  }
  EXPECT_GT(stamped, 0u);
}

TEST(MembershipRuns, AJoinerGivesUpOnlyWhenNoJoinAddressAdmitsIt) {
  RunIdentity other = small_run();
  other.algo = "diloco";
  const Millis retry = MembershipConfig{}.join_retry;
  // Two join addresses, one refuses and the other is silent: the joiner waits kRefusalGrace retries.
  Membership j({PeerId{3}, "tcp://j:1", 1}, config_of(small_run()), 3);
  j.join("tcp://a:1", 0);
  j.join("tcp://down:1", 0);
  j.take_actions();
  j.on_message(PeerId{1}, Refusal{other}, 100);
  std::vector<Action> out = j.take_actions();
  EXPECT_EQ(actions_of<OtherRun>(out).size(), 1u);
  EXPECT_TRUE(actions_of<JoinRefused>(out).empty());
  j.tick(100 + Membership::kRefusalGrace * retry - 1);
  out = j.take_actions();
  EXPECT_TRUE(actions_of<JoinRefused>(out).empty());
  EXPECT_FALSE(actions_of<SendToAddr>(out).empty());  // still asking
  j.tick(100 + Membership::kRefusalGrace * retry);
  out = j.take_actions();
  ASSERT_EQ(actions_of<JoinRefused>(out).size(), 1u);
  EXPECT_EQ(actions_of<JoinRefused>(out)[0].differences, "algo: gossip here, diloco there");
  // One address refuses, another of our run welcomes: joined, never given up.
  Membership k({PeerId{4}, "tcp://k:1", 1}, config_of(small_run()), 4);
  k.join("tcp://a:1", 0);
  k.join("tcp://b:1", 0);
  k.take_actions();
  k.on_message(PeerId{1}, Refusal{other}, 100);
  k.on_message(PeerId{2}, Welcome{{PeerId{2}, "tcp://b:1", 1}, {}, small_run()}, 150);
  for (Millis t = 200; t < 10000; t += 100) k.tick(t);
  out = k.take_actions();
  EXPECT_TRUE(k.joined());
  EXPECT_TRUE(actions_of<JoinRefused>(out).empty());
  // A refusal that names no difference is no refusal; nor does one stop a peer that never joined anyone.
  Membership first({PeerId{5}, "tcp://first:1", 1}, config_of(small_run()), 5);
  first.on_message(PeerId{1}, Refusal{small_run()}, 0);
  first.on_message(PeerId{1}, Refusal{other}, 0);
  for (Millis t = 0; t < 5000; t += 100) first.tick(t);
  out = first.take_actions();
  EXPECT_EQ(actions_of<OtherRun>(out).size(), 1u);
  EXPECT_TRUE(actions_of<JoinRefused>(out).empty());
}

TEST(MembershipRuns, APeerRestartedWithAnotherRunIsRefusedAndDeclaredDead) {
  FakeNetworkConfig fc;
  fc.membership.run = small_run();
  FakeNetwork net(fc);
  grow(net, 6);
  ASSERT_TRUE(net.run_until([&] { return converged(net); }, 20000));
  net.run_for(3000);  // links up
  std::vector<size_t> gave_up;
  net.on_action = [&](size_t at, const Action& a) {
    if (std::holds_alternative<JoinRefused>(a)) gave_up.push_back(at);
  };
  // Node 3's key comes back with another seed, joining through node 0: refused, and since its new process
  // answers nothing of the old run, the others declare its old self dead and drop their links to it.
  MembershipConfig other = fc.membership;
  other.run.seed = 99;
  net.restart(3, 0, other);
  auto dropped_by_the_others = [&] {
    for (size_t i : net.live_nodes()) {
      const auto s = net.node(i).state_of(net.id(3));
      if (i != 3 && s && (*s == PeerState::alive || *s == PeerState::suspect)) return false;
    }
    return true;
  };
  EXPECT_TRUE(net.run_until(dropped_by_the_others, 10000));
  EXPECT_EQ(gave_up, std::vector<size_t>{3});
  net.run_for(5000);  // the others' rejoin Hellos to its tombstone are refused too: it stays out
  EXPECT_TRUE(dropped_by_the_others());
  EXPECT_TRUE(net.node(3).members().empty());
  EXPECT_TRUE(net.node(3).links().empty());
  for (size_t i : net.live_nodes())
    for (const Neighbour& l : net.node(i).links()) EXPECT_NE(l.peer.id, net.id(3));
}

// -- reachability (docs/membership.md, "Reachability") ----------------------------------------------

// One public seed, three peers that check their address (two are dialable, one is behind NAT) and two
// that are outbound-only by configuration (behind NAT): the dialable ones advertise their address once
// dialled back; peers behind NAT advertise none, still learn of everyone, link only with dialable peers
// (links they opened), and are never declared dead by peers they cannot hear from.
TEST(MembershipReach, PeersBehindNatJoinAndLinkThroughTheDialableOnes) {
  FakeNetworkConfig fc;
  fc.seed = 11;
  FakeNetwork net(fc);
  MembershipConfig check = fc.membership, outbound = fc.membership;
  check.reach = MembershipConfig::Reach::check;
  outbound.reach = MembershipConfig::Reach::outbound;
  DeathLog log;
  std::map<size_t, Reachability> reach;  // the last report per node
  net.on_action = [&](size_t at, const Action& a) {
    if (auto* r = std::get_if<Reachability>(&a)) reach[at] = *r;
    if (auto* e = std::get_if<MemberEvent>(&a); e && e->state == PeerState::dead)
      log.deaths.emplace_back(at, e->peer.id);
  };
  net.add_node();       // 0: the seed, public
  net.add_node(check);  // 1, 2: dialable, checked
  net.add_node(check);
  net.add_node(check, true);     // 3: checks, behind NAT
  net.add_node(outbound, true);  // 4, 5: outbound-only
  net.add_node(outbound, true);
  const std::set<size_t> nat = {3, 4, 5};
  for (size_t i = 1; i < net.size(); ++i) net.join(i, 0);
  ASSERT_TRUE(net.run_until([&] { return converged(net); }, 20000)) << "at " << net.now() << " ms";
  net.run_for(check.dial_check_timeout + 1000);

  for (size_t i : {1, 2}) {
    EXPECT_EQ(net.node(i).self().addr, "sim://" + std::to_string(i)) << i;
    ASSERT_TRUE(reach.count(i)) << i;
    EXPECT_TRUE(reach[i].dialable);
    EXPECT_EQ(reach[i].by, net.id(0));  // the peer it joined through dialled it back
  }
  for (size_t i : nat) {
    EXPECT_TRUE(net.node(i).self().addr.empty()) << i;
    ASSERT_TRUE(reach.count(i)) << i;
    EXPECT_FALSE(reach[i].dialable);
  }
  EXPECT_EQ(reach[3].addr, "sim://3");  // the candidate nobody could dial
  EXPECT_TRUE(reach[4].addr.empty());   // outbound by configuration: nothing was tried

  net.run_for(60000);  // links re-sample, probes go round
  EXPECT_TRUE(converged(net));
  EXPECT_TRUE(log.deaths.empty()) << log.deaths.size() << " live peers declared dead";
  for (size_t i = 0; i < net.size(); ++i) {
    for (const PeerInfo& p : net.node(i).members()) {
      const size_t j = net.index_of(p.id);
      EXPECT_EQ(net.node(i).state_of(p.id), PeerState::alive) << i << " holds " << j;
      // Everyone learned the dialable peers' addresses, and no address for the others.
      EXPECT_EQ(p.addr.empty(), nat.count(j) == 1) << i << " holds " << j << " at '" << p.addr << "'";
    }
    for (const Neighbour& l : net.node(i).links())
      EXPECT_FALSE(nat.count(i) && nat.count(net.index_of(l.peer.id))) << "link between two peers behind NAT";
  }
  for (size_t i : nat) EXPECT_GE(net.node(i).degree(), 1u) << i;
}

// With a relay, two peers behind NAT become neighbours: the seed relays (docs/relay.md).
TEST(MembershipReach, PeersBehindNatLinkWithEachOtherThroughARelay) {
  FakeNetworkConfig fc;
  fc.seed = 5;
  FakeNetwork net(fc);
  MembershipConfig relay = fc.membership, outbound = fc.membership;
  relay.relay = true;
  outbound.reach = MembershipConfig::Reach::outbound;
  net.add_node(relay);
  for (int i = 0; i < 4; ++i) net.add_node(outbound, true);
  for (size_t i = 1; i < net.size(); ++i) net.join(i, 0);
  ASSERT_TRUE(net.run_until([&] { return converged(net); }, 20000));
  net.run_for(60000);
  size_t relayed = 0;
  for (size_t i = 1; i < net.size(); ++i) {
    EXPECT_GE(net.node(i).degree(), 2u) << i;  // the seed, and at least one through it
    for (const Neighbour& l : net.node(i).links()) {
      const size_t j = net.index_of(l.peer.id);
      if (j == 0) continue;
      ++relayed;
      // Either end holds the other as a neighbour; the caller reaches it at the relay's port.
      EXPECT_TRUE(l.peer.addr.empty() || l.peer.addr.rfind("relay://0/", 0) == 0) << l.peer.addr;
    }
  }
  EXPECT_GE(relayed, 4u);  // links counted at both ends
  EXPECT_GT(net.node(0).counters().relays_opened, 0u);
  // The relay dies: the relayed links go with it, and the peers behind NAT, which can no longer reach
  // one another, declare each other dead instead of waiting on neighbours that cannot answer.
  net.crash(0);
  net.run_for(30000);
  for (size_t i = 1; i < net.size(); ++i) {
    EXPECT_EQ(net.node(i).degree(), 0u) << i;
    for (size_t j = 1; j < net.size(); ++j) {
      if (j == i) continue;
      EXPECT_NE(net.node(i).state_of(net.id(j)), PeerState::alive) << i << " about " << j;
    }
  }
}

// A peer whose members are all outbound-only peers it never heard from has nobody to probe: its timers
// still return (they used to spin forever looking for a probe target).
TEST(MembershipReach, NobodyToProbeIsNotALoop) {
  MembershipConfig cfg;
  Membership m({PeerId{1}, "tcp://a:1", 1}, cfg, 1);
  auto peer = [](uint8_t id, const char* addr) {
    PeerInfo p;
    p.id = PeerId{id};
    p.addr = addr;
    p.incarnation = 1;
    return p;
  };
  Welcome w;
  w.self = peer(2, "tcp://b:2");
  w.sample = {peer(3, ""), peer(4, "")};
  w.run = cfg.run;
  m.on_message(PeerId{2}, w, 0);
  m.on_message(PeerId{2}, Bye{1}, 1);  // the one peer it could reach leaves
  for (Millis t = 2; t < 10 * cfg.probe_interval; t += 10) m.tick(t);
  EXPECT_EQ(m.state_of(PeerId{3}), PeerState::alive);  // nobody suspects what it cannot probe
}

TEST(MembershipReach, AJoinerIsDialledBackAtMostOncePerInterval) {
  MembershipConfig cfg;
  Membership seed({PeerId{1}, "tcp://seed:1", 1}, cfg, 1);
  const PeerId joiner{2};
  Hello hello;
  hello.self.id = joiner;  // no address yet: it asks to be dialled back
  hello.self.incarnation = 5;
  hello.run = cfg.run;
  hello.dial_back = "tcp://joiner:2";
  seed.on_message(joiner, hello, 0, "192.0.2.9");
  auto out = seed.take_actions();
  const auto dials = actions_of<DialBack>(out);
  ASSERT_EQ(dials.size(), 1u);
  EXPECT_EQ(dials[0].to.addr, "tcp://joiner:2");
  EXPECT_EQ(std::get<Reachable>(dials[0].msg).addr, "tcp://joiner:2");
  const auto welcomes = actions_of<SendTo>(out);
  ASSERT_EQ(welcomes.size(), 1u);
  EXPECT_TRUE(welcomes[0].to.addr.empty());  // answered over the joiner's own connection
  EXPECT_EQ(std::get<Welcome>(welcomes[0].msg).observed, "192.0.2.9");
  seed.on_message(joiner, hello, cfg.dial_back_interval - 1, "192.0.2.9");
  out = seed.take_actions();
  EXPECT_TRUE(actions_of<DialBack>(out).empty());
  seed.on_message(joiner, hello, cfg.dial_back_interval, "192.0.2.9");
  out = seed.take_actions();
  EXPECT_EQ(actions_of<DialBack>(out).size(), 1u);
  EXPECT_EQ(seed.counters().dial_backs, 2u);
  // A joiner listening on every interface is dialled at the address it was seen at, on its port.
  hello.self.id = PeerId{3};
  hello.dial_back = "tcp://0.0.0.0:7000";
  seed.on_message(PeerId{3}, hello, 0, "198.51.100.4");
  const auto wild = actions_of<DialBack>(seed.take_actions());
  ASSERT_EQ(wild.size(), 1u);
  EXPECT_EQ(wild[0].to.addr, "tcp://198.51.100.4:7000");
}

TEST(MembershipReach, OnlyADialBackToTheCandidateMakesAPeerAdvertiseIt) {
  MembershipConfig cfg;
  cfg.reach = MembershipConfig::Reach::check;
  Membership j({PeerId{2}, "tcp://joiner:2", 5}, cfg, 1);
  EXPECT_TRUE(j.self().addr.empty());
  j.join("tcp://seed:1", 0);
  const auto hellos = actions_of<SendToAddr>(j.take_actions());
  ASSERT_EQ(hellos.size(), 1u);
  EXPECT_EQ(std::get<Hello>(hellos[0].msg).dial_back, "tcp://joiner:2");
  j.on_message(PeerId{1}, Reachable{"tcp://elsewhere:2"}, 10);  // not the address it listens on
  EXPECT_TRUE(j.self().addr.empty());
  j.on_message(PeerId{1}, Reachable{"tcp://joiner:2"}, 20);
  EXPECT_EQ(j.self().addr, "tcp://joiner:2");
  EXPECT_EQ(j.self().incarnation, 6u);  // news that replaces the empty address everywhere
  const auto reports = actions_of<Reachability>(j.take_actions());
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports[0].dialable);
  // Listening on every interface: the address it was reached at, if on its port, is what it advertises.
  Membership w({PeerId{4}, "tcp://0.0.0.0:7000", 5}, cfg, 1);
  w.on_message(PeerId{1}, Reachable{"tcp://198.51.100.4:7001"}, 10);
  EXPECT_TRUE(w.self().addr.empty());
  w.on_message(PeerId{1}, Reachable{"tcp://198.51.100.4:7000"}, 20);
  EXPECT_EQ(w.self().addr, "tcp://198.51.100.4:7000");
}

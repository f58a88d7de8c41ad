#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "gossip/membership.h"
#include "tests/fake_network.h"

using namespace murmur::gossip;
using murmur::gossip::testing::FakeNetwork;
using murmur::gossip::testing::FakeNetworkConfig;

namespace {

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
  Millis now = 0;
  for (int i = 0; i < 20000; ++i) {
    const PeerId from = rng.below(8) == 0 ? m.self().id : peer().id;
    const uint64_t x = rng.below(8);
    Message msg;
    switch (rng.below(12)) {
      case 0:
        msg = Hello{rng.below(2) ? PeerInfo{from, "tcp://x", x} : peer()};
        break;
      case 1:
        msg = Welcome{rng.below(2) ? PeerInfo{from, "tcp://x", x} : peer(), peers()};
        break;
      case 2:
        msg = Shuffle{peers(), rng.below(2) == 0};
        break;
      case 3:
        msg = Ping{x, updates()};
        break;
      case 4:
        msg = Ack{x, peer().id, updates()};
        break;
      case 5:
        msg = PingReq{x, peer()};
        break;
      case 6:
        msg = LinkRequest{x, static_cast<uint32_t>(rng.next())};
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
      default:
        msg = Bye{x};
        break;
    }
    m.on_message(from, msg, now);
    if (i % 7 == 0) m.tick(now += 37);
    for (const Action& a : m.take_actions()) {
      if (auto* s = std::get_if<SendTo>(&a)) {
        ASSERT_NE(s->to.id, m.self().id);
        ASSERT_FALSE(s->to.addr.empty());
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

TEST(Membership, RejectsBadConfig) {
  MembershipConfig c;
  c.target_degree = 6;
  EXPECT_THROW(validate(c), std::invalid_argument);
  c = {};
  c.probe_timeout = c.probe_interval;
  EXPECT_THROW(validate(c), std::invalid_argument);
  EXPECT_THROW(Membership({PeerId{}, "", 0}, MembershipConfig{}, 1), std::invalid_argument);
  EXPECT_NO_THROW(validate(MembershipConfig{}));
}

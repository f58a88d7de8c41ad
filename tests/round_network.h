// A fake network for the round driver (gossip/round_driver.h): P drivers whose messages wait on one
// in-memory wire, in send order, until deliver() hands them over; a test may tamper with or drop any
// of them on the way. Each peer's model is a vector its local steps change; it takes the driver's θ
// after every mix and adoption, as the peer process writes it into its model. Time is a plain counter.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gossip/round_driver.h"

namespace murmur::test {

using Vec = std::vector<float>;
using Edge = std::pair<int, int>;  // first < second

inline gossip::PeerId pid(int i) {
  gossip::PeerId p{};
  p[0] = static_cast<uint8_t>(i + 1);
  return p;
}
inline int index_of(const gossip::PeerId& p) { return p[0] - 1; }

struct RoundNet {
  struct Msg {
    int from = 0, to = 0;
    uint64_t epoch = 0, seq = 0;
    std::shared_ptr<const gossip::TrainMessage> msg;
  };

  std::vector<gossip::RoundDriver> peers;
  std::vector<Vec> model;
  std::deque<Msg> wire;
  std::set<Edge> edges;
  std::map<Edge, uint64_t> epochs;  // the current epoch of each edge
  gossip::Millis now = 0;
  uint64_t next_epoch = 0;
  std::vector<std::pair<int, gossip::Mixed>> mixes;  // by peer
  std::vector<std::pair<int, gossip::Adopted>> adoptions;
  std::vector<std::string> rejections;
  // Sees every message before delivery; false drops it (lost on the wire).
  std::function<bool(Msg&)> on_wire;

  // Peer i starts from start[i] (start() of a new run).
  RoundNet(const std::vector<Vec>& start, const gossip::RoundConfig& cfg, uint64_t seed) : model(start) {
    for (size_t i = 0; i < start.size(); ++i) {
      peers.emplace_back(start[i].size(), cfg, seed + i);
      peers.back().start(start[i]);
    }
  }
  int size() const { return static_cast<int>(peers.size()); }

  // Carries out peer i's actions.
  void collect(int i) {
    for (gossip::RoundAction& a : peers[i].take_actions()) {
      if (auto* s = std::get_if<gossip::SendTrain>(&a)) {
        wire.push_back({i, index_of(s->to), s->epoch, s->seq, s->msg});
      } else if (auto* ad = std::get_if<gossip::Adopted>(&a)) {
        adoptions.emplace_back(i, *ad);
        model[i].assign(peers[i].theta().begin(), peers[i].theta().end());
      } else if (auto* m = std::get_if<gossip::Mixed>(&a)) {
        mixes.emplace_back(i, *m);
        model[i].assign(peers[i].theta().begin(), peers[i].theta().end());
      } else if (auto* r = std::get_if<gossip::Rejected>(&a)) {
        rejections.push_back(r->reason);
      }
    }
  }
  // Hands over everything on the wire (and what the receivers send in turn).
  void deliver() {
    while (!wire.empty()) {
      Msg m = std::move(wire.front());
      wire.pop_front();
      if (on_wire && !on_wire(m)) continue;
      peers[m.to].on_message(pid(m.from), m.epoch, m.seq, *m.msg, now);
      collect(m.to);
    }
  }
  void connect(int i, int j) {
    const uint64_t e = ++next_epoch;
    peers[i].link_up(pid(j), e);
    peers[j].link_up(pid(i), e);
    collect(i);
    collect(j);
    edges.insert(std::minmax(i, j));
    epochs[std::minmax(i, j)] = e;
  }
  void disconnect(int i, int j) {
    const uint64_t e = epochs.at(std::minmax(i, j));
    peers[i].link_down(pid(j), e, now);
    peers[j].link_down(pid(i), e, now);
    collect(i);
    collect(j);
    edges.erase(std::minmax(i, j));
  }
  void set_graph(const std::set<Edge>& next) {
    for (const Edge& e : std::set<Edge>(edges))
      if (!next.contains(e)) disconnect(e.first, e.second);
    for (const Edge& e : next)
      if (!edges.contains(e)) connect(e.first, e.second);
    deliver();
  }
  // Peer i's local steps are done: its model goes to the driver.
  void done(int i) {
    peers[i].local_steps_done(model[i], now);
    collect(i);
  }
  // One round of every peer: local steps (none by default), then all messages delivered; every peer has
  // mixed at the end.
  void round(const std::function<void(int, Vec&)>& local = {}) {
    for (int i = 0; i < size(); ++i) {
      if (local) local(i, model[i]);
      done(i);
    }
    deliver();
    for (int i = 0; i < size(); ++i)
      ASSERT_EQ(peers[i].phase(), gossip::RoundDriver::Phase::computing) << "peer " << i << " did not mix";
  }
  Vec average() const {
    Vec avg(model[0].size(), 0.0f);
    for (const Vec& t : model)
      for (size_t k = 0; k < t.size(); ++k) avg[k] += t[k] / static_cast<float>(size());
    return avg;
  }
  // max_i ‖θ_i − θ̄‖ / ‖θ̄‖
  double distance() const {
    const Vec avg = average();
    double worst = 0;
    for (const Vec& t : model) worst = std::max(worst, gossip::l2_distance(t, avg) / gossip::l2_norm(avg));
    return worst;
  }
  // Messages dropped by a receiver as malformed, outliers, gaps or unsynced (not digest mismatches).
  uint64_t rejected() const {
    uint64_t n = 0;
    for (const auto& p : peers) {
      const gossip::ConsensusCounters& c = p.consensus().counters();
      n += c.malformed + c.norm_outliers + c.gaps + c.dropped_unsynced;
    }
    return n;
  }
};

// Plain local SGD in the driver (outer lr 1, no momentum), so tests of consensus see θ' unchanged.
inline gossip::RoundConfig plain_round(const char* codec, double gamma) {
  gossip::RoundConfig c;
  c.consensus.codec = codec;
  c.consensus.gamma = gamma;
  c.outer_lr = 1.0;
  c.outer_momentum = 0.0;
  return c;
}

}  // namespace murmur::test

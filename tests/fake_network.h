// A deterministic discrete-event harness for the sans-IO membership: a virtual
// clock, per-message delay, optional loss, partitions between groups, crashes
// and restarts, all driven by one seed. Messages travel as values (no codec).
// Reusable by any test that needs a swarm of Membership objects; `on_action`
// sees every non-send action (LinkUp/LinkDown/MemberEvent) a node emits.
// A node behind NAT receives only from peers it has sent to (over the connection
// it opened), and never a dial-back.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gossip/membership.h"

namespace murmur::gossip::testing {

struct FakeNetworkConfig {
  Millis min_delay = 5, max_delay = 40;  // one-way, uniform
  double loss = 0.0;                     // per message
  Millis tick = 10;                      // how often every node's tick() runs
  uint64_t seed = 1;
  MembershipConfig membership;
};

class FakeNetwork {
 public:
  explicit FakeNetwork(FakeNetworkConfig cfg) : cfg_(cfg), rng_(cfg.seed) {}

  // A new node (not joined yet); ids are pseudo-random so their order is not the index order. `cfg`
  // replaces the network's membership config; `behind_nat`: nobody can dial it.
  size_t add_node(const std::optional<MembershipConfig>& cfg = std::nullopt, bool behind_nat = false) {
    const size_t i = nodes_.size();
    PeerInfo info;
    for (size_t b = 0; b < info.id.size(); b += 8) {
      const uint64_t w = mix64(cfg_.seed * 1000003 + i * 4 + b / 8);
      for (size_t k = 0; k < 8; ++k) info.id[b + k] = static_cast<uint8_t>(w >> (8 * k));
    }
    info.addr = "sim://" + std::to_string(i);
    info.incarnation = 1;
    nodes_.push_back(Node{});
    nodes_.back().nat = behind_nat;
    by_id_[info.id] = i;
    by_addr_[info.addr] = i;
    start(i, info, cfg.value_or(cfg_.membership));
    return i;
  }
  void join(size_t i, size_t via) {
    node(i).join(nodes_[via].m->self().addr, now_);
    drain(i);
  }
  void crash(size_t i) { nodes_.at(i).up = false; }
  // A fresh process with the same id and a higher incarnation, joining through `via`; with `cfg`, started
  // with that configuration instead of the network's (another run's, say).
  void restart(size_t i, size_t via, const std::optional<MembershipConfig>& cfg = std::nullopt) {
    PeerInfo info = nodes_.at(i).m->self();
    info.incarnation += 1;
    start(i, info, cfg.value_or(cfg_.membership));
    join(i, via);
  }
  // Graceful: its farewell messages still arrive, then it is out of live_nodes().
  void leave(size_t i) {
    node(i).leave(now_);
    drain(i);
    nodes_[i].left = true;
  }
  // Nodes talk only within their group; heal() puts everyone back in group 0.
  void partition(const std::vector<int>& groups) {
    for (size_t i = 0; i < nodes_.size(); ++i) nodes_[i].group = groups.at(i);
  }
  void heal() {
    for (Node& n : nodes_) n.group = 0;
  }
  void set_loss(double p) { cfg_.loss = p; }
  // Sends `msg` as node `from` (authenticated as it), beside what its Membership sends: a liar.
  void send_as(size_t from, size_t to, Message msg) { post(from, to, std::move(msg)); }

  void run_for(Millis d) {
    run_until([] { return false; }, d);
  }
  // Advances the clock tick by tick until pred() holds (true) or `limit` passes (false).
  template <class Pred>
  bool run_until(Pred pred, Millis limit) {
    const Millis end = now_ + limit;
    while (now_ < end) {
      if (pred()) return true;
      now_ += cfg_.tick;
      while (!queue_.empty() && queue_.top().at <= now_) {
        Envelope e = queue_.top();
        queue_.pop();
        deliver(e);
      }
      for (size_t i = 0; i < nodes_.size(); ++i) {
        if (!nodes_[i].up || nodes_[i].left) continue;
        nodes_[i].m->tick(now_);
        drain(i);
      }
    }
    return pred();
  }

  Millis now() const { return now_; }
  size_t size() const { return nodes_.size(); }
  Membership& node(size_t i) { return *nodes_.at(i).m; }
  const PeerId& id(size_t i) const { return nodes_.at(i).m->self().id; }
  size_t index_of(const PeerId& id) const { return by_id_.at(id); }
  std::vector<size_t> live_nodes() const {
    std::vector<size_t> out;
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].up && !nodes_[i].left) out.push_back(i);
    return out;
  }

  std::function<void(size_t node, const Action& a)> on_action;
  uint64_t delivered = 0, dropped = 0;
  uint64_t unroutable = 0;  // sends to a node behind NAT that had not opened a connection to the sender,
                            // or between two nodes behind NAT not through a running relay

 private:
  struct Node {
    std::unique_ptr<Membership> m;
    bool up = true;     // false: crashed, nothing in or out
    bool left = false;  // left gracefully: no longer ticked or counted live
    int group = 0;
    uint64_t generation = 0;  // bumped by restart: messages to the old process are lost
    bool nat = false;
  };
  struct Envelope {
    Millis at;
    uint64_t order;
    size_t from, to;
    uint64_t to_generation;
    Message msg;
    bool operator<(const Envelope& o) const { return at != o.at ? at > o.at : order > o.order; }
  };

  void start(size_t i, const PeerInfo& info, const MembershipConfig& cfg) {
    Node& n = nodes_.at(i);
    n.m = std::make_unique<Membership>(info, cfg, mix64(cfg_.seed ^ (i + 1) ^ (n.generation << 32)));
    n.up = true;
    n.left = false;
    ++n.generation;
  }
  bool reachable(size_t a, size_t b) const {
    return nodes_[a].up && nodes_[b].up && nodes_[a].group == nodes_[b].group;
  }
  void drain(size_t i) {
    for (Action& a : nodes_[i].m->take_actions()) {
      if (auto* s = std::get_if<SendTo>(&a)) {
        auto it = by_id_.find(s->to.id);
        const auto relay = relays_.find(s->to.addr);
        if (relay != relays_.end()) {
          post(i, relay->second.callee, std::move(s->msg));
        } else if (it != by_id_.end()) {
          post(i, it->second, std::move(s->msg));
        }
      } else if (auto* sa = std::get_if<SendToAddr>(&a)) {
        auto it = by_addr_.find(sa->addr);
        if (it != by_addr_.end()) post(i, it->second, std::move(sa->msg));
      } else if (auto* o = std::get_if<OpenRelay>(&a)) {
        // The relay's ports, as addresses: the caller's sends to it reach the callee.
        const size_t caller = by_id_.at(o->caller.id), callee = by_id_.at(o->callee.id);
        const std::string at = "relay://" + std::to_string(i) + "/" + std::to_string(caller) + "/";
        relays_[at + std::to_string(callee)] = {caller, callee};
        relay_between_[{caller, callee}] = relay_between_[{callee, caller}] = i;
        post(i, callee, RelayOffer{o->caller.id, at + std::to_string(callee), true});
        post(i, caller, RelayOffer{o->callee.id, at + std::to_string(callee), false});
      } else if (auto* u = std::get_if<UseRelay>(&a); u && u->callee) {
        // The callee's connection to the relay: what the caller sends through it reaches it, and back.
        if (auto r = relays_.find(u->addr); r != relays_.end())
          opened_.insert({r->second.callee, r->second.caller});
        if (on_action) on_action(i, a);
      } else if (auto* d = std::get_if<DialBack>(&a)) {
        auto it = by_addr_.find(d->to.addr);
        if (it == by_addr_.end() || nodes_[it->second].nat) {
          ++unroutable;
        } else {
          post(i, it->second, std::move(d->msg));
        }
      } else if (on_action) {
        on_action(i, a);
      }
    }
  }
  void post(size_t from, size_t to, Message msg) {
    // Two peers behind NAT reach each other only through a relay that runs (no hole punching).
    if (nodes_[from].nat && nodes_[to].nat) {
      const auto r = relay_between_.find({from, to});
      if (r == relay_between_.end() || !nodes_[r->second].up) {
        ++unroutable;
        return;
      }
    }
    if (nodes_[from].nat) opened_.insert({from, to});
    if (nodes_[to].nat && !opened_.count({to, from})) {
      ++unroutable;
      return;
    }
    if (!reachable(from, to) || rng_.uniform() < cfg_.loss) {
      ++dropped;
      return;
    }
    const Millis delay =
        cfg_.min_delay +
        static_cast<Millis>(rng_.below(static_cast<uint64_t>(cfg_.max_delay - cfg_.min_delay + 1)));
    queue_.push(Envelope{now_ + delay, order_++, from, to, nodes_[to].generation, std::move(msg)});
  }
  void deliver(const Envelope& e) {
    if (!reachable(e.from, e.to) || nodes_[e.to].generation != e.to_generation) {
      ++dropped;
      return;
    }
    ++delivered;
    nodes_[e.to].m->on_message(id(e.from), e.msg, now_);
    drain(e.to);
  }

  FakeNetworkConfig cfg_;
  SplitMix64 rng_;
  Millis now_ = 0;
  uint64_t order_ = 0;
  std::vector<Node> nodes_;
  std::map<PeerId, size_t> by_id_;
  std::map<std::string, size_t> by_addr_;
  std::set<std::pair<size_t, size_t>> opened_;  // (node behind NAT, peer it sent to)
  struct RelayPort {
    size_t caller, callee;
  };
  std::map<std::string, RelayPort> relays_;                    // relay port -> whom it joins
  std::map<std::pair<size_t, size_t>, size_t> relay_between_;  // (from, to) -> the relay joining them
  std::priority_queue<Envelope> queue_;
};

}  // namespace murmur::gossip::testing

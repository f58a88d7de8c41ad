#include "gossip/membership.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace murmur::gossip {

namespace {

int rank(PeerState s) { return static_cast<int>(s); }  // alive < suspect < dead < left
bool gone(PeerState s) { return s == PeerState::dead || s == PeerState::left; }

// "tcp://0.0.0.0:P" or "tcp://[::]:P": a peer listening on every interface, not an address to dial.
bool wildcard_host(const std::string& addr) {
  return addr.rfind("tcp://0.0.0.0:", 0) == 0 || addr.rfind("tcp://[::]:", 0) == 0 ||
         addr.rfind("tcp://*:", 0) == 0;
}

// An empty address is valid: an outbound-only peer's (reached over the connections it opened).
bool valid(const PeerInfo& p) { return p.addr.size() <= kMaxAddrLen; }

// At most the first kMaxPeersPerMessage entries of a list from the network count.
template <class T>
size_t bounded(const std::vector<T>& v) {
  return std::min(v.size(), kMaxPeersPerMessage);
}

}  // namespace

void validate(const MembershipConfig& c) {
  auto require = [](bool ok, const char* what) {
    if (!ok) throw std::invalid_argument(std::string("membership config: ") + what);
  };
  require(c.probe_interval > 0, "probe_interval must be > 0");
  require(c.probe_timeout > 0 && c.probe_timeout < c.probe_interval,
          "probe_timeout must be in (0, probe_interval)");
  require(c.indirect_probes >= 0 && c.indirect_probes <= 16, "indirect_probes must be in [0, 16]");
  require(c.suspicion_timeout > 0, "suspicion_timeout must be > 0");
  require(c.max_piggyback >= 3 && static_cast<size_t>(c.max_piggyback) <= kMaxPeersPerMessage,
          "max_piggyback must be in [3, kMaxPeersPerMessage]");
  require(c.retransmit_mult >= 1, "retransmit_mult must be >= 1");
  require(c.join_retry > 0 && c.shuffle_interval > 0 && c.rejoin_interval > 0,
          "join_retry, shuffle_interval and rejoin_interval must be > 0");
  require(c.shuffle_size >= 1 && static_cast<size_t>(c.shuffle_size) <= kMaxPeersPerMessage,
          "shuffle_size must be in [1, kMaxPeersPerMessage]");
  require(c.welcome_size >= 1 && static_cast<size_t>(c.welcome_size) <= kMaxPeersPerMessage,
          "welcome_size must be in [1, kMaxPeersPerMessage]");
  require(c.max_members >= 1, "max_members must be >= 1");
  require(c.dead_retention >= c.suspicion_timeout, "dead_retention must be >= suspicion_timeout");
  require(c.max_relays >= 1, "max_relays must be >= 1");
  require(c.target_degree >= 1 && c.target_degree < c.max_degree,
          "need 1 <= target_degree < max_degree (re-sampling opens a link before closing one)");
  require(c.dial_check_timeout > 0 && c.dial_back_interval > 0,
          "dial_check_timeout and dial_back_interval must be > 0");
  require(c.link_lifetime > 0 && c.link_request_timeout > 0,
          "link_lifetime and link_request_timeout must be > 0");
  // What the wire can carry (gossip/wire.cpp decodes no more).
  require(c.run.algo.size() <= kMaxAlgoLen && std::isfinite(c.run.outer_lr) &&
              std::isfinite(c.run.outer_momentum),
          "run: algo must be at most kMaxAlgoLen characters, outer_lr and outer_momentum finite");
}

Membership::Membership(PeerInfo self, MembershipConfig cfg, uint64_t seed)
    : self_(std::move(self)),
      cfg_(std::move(cfg)),
      run_digest_(run_digest(cfg_.run)),
      rng_(mix64(seed)),
      members_(seed),
      broadcasts_(seed) {
  validate(cfg_);
  if (!valid(self_) || (cfg_.reach != MembershipConfig::Reach::outbound && self_.addr.empty()))
    throw std::invalid_argument("membership: own address empty or too long");
  if (cfg_.reach != MembershipConfig::Reach::assumed) candidate_ = std::exchange(self_.addr, {});
  if (cfg_.reach == MembershipConfig::Reach::outbound) candidate_.clear();
  if (self_.incarnation > kMaxIncarnation) throw std::invalid_argument("membership: incarnation above 2^62");
  // Spread the peers' timers so they do not probe and shuffle in lockstep.
  next_probe_ = static_cast<Millis>(rng_.below(static_cast<uint64_t>(cfg_.probe_interval)));
  next_shuffle_ = static_cast<Millis>(rng_.below(static_cast<uint64_t>(cfg_.shuffle_interval)));
  next_rejoin_ = cfg_.rejoin_interval;
}

// -- inputs ---------------------------------------------------------------------

void Membership::join(const std::string& addr, Millis now) {
  if (leaving_ || addr.empty() || addr.size() > kMaxAddrLen) return;
  if (std::find(join_addrs_.begin(), join_addrs_.end(), addr) == join_addrs_.end() &&
      join_addrs_.size() < kMaxJoinAddrs)
    join_addrs_.push_back(addr);
  actions_.push_back(SendToAddr{addr, hello()});
  ++counters_.messages_out;
  next_join_ = now + cfg_.join_retry;
}

Hello Membership::hello() const { return Hello{self_, cfg_.run, self_.addr.empty() ? candidate_ : ""}; }

void Membership::on_message(const PeerId& from, const Message& m, Millis now, const std::string& observed) {
  ++counters_.messages_in;
  if (leaving_ || from == self_.id) return ignore();
  if (const auto* hello = std::get_if<Hello>(&m)) return handle(from, *hello, now, observed);
  std::visit(
      [&](const auto& msg) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(msg)>, Hello>) handle(from, msg, now);
      },
      m);
}

void Membership::tick(Millis now) {
  if (leaving_) return;
  run_join(now);
  run_reachability(now);
  run_probe(now);
  run_suspicions(now);
  run_sampling(now);
  run_links(now);
}

void Membership::leave(Millis) {
  if (leaving_) return;
  for (const auto& s : members_.slots())
    if (s.used && !gone(s.value.state)) send(s.value.info, Bye{self_.incarnation});
  for (const auto& [id, p] : pending_links_)
    if (const Member* m = live(id)) send(m->info, LinkClose{p.epoch});
  pending_links_.clear();
  while (!links_.empty()) close_link(links_.begin()->first, true);
  leaving_ = true;
}

std::vector<Action> Membership::take_actions() { return std::exchange(actions_, {}); }

// -- queries --------------------------------------------------------------------

std::vector<PeerInfo> Membership::members() const {
  std::vector<PeerInfo> out;
  for (const auto& s : members_.slots())
    if (s.used && !gone(s.value.state)) out.push_back(s.value.info);
  std::sort(out.begin(), out.end(),
            [](const PeerInfo& a, const PeerInfo& b) { return IdLess{}(a.id, b.id); });
  return out;
}

std::optional<PeerState> Membership::state_of(const PeerId& id) const {
  if (id == self_.id) return leaving_ ? PeerState::left : PeerState::alive;
  const Member* m = members_.get(id);
  if (m == nullptr) return std::nullopt;
  return m->state;
}

std::optional<PeerInfo> Membership::info_of(const PeerId& id) const {
  if (id == self_.id) return self_;
  const Member* m = members_.get(id);
  if (m == nullptr) return std::nullopt;
  PeerInfo info = m->info;
  if (const auto r = relayed_.find(id); info.addr.empty() && r != relayed_.end()) info.addr = r->second;
  return info;
}

std::vector<Neighbour> Membership::links() const {
  std::vector<Neighbour> out;
  for (const auto& [id, l] : links_) out.push_back({l.peer, l.epoch, l.their_degree});
  return out;
}

// -- joining and sampling --------------------------------------------------------

void Membership::handle(const PeerId& from, const Hello& m, Millis now, const std::string& observed) {
  if (m.self.id != from || !valid(m.self)) return ignore();
  // Only a fresh process (or one back from a partition) says Hello: whatever link we
  // hold with it, its side is gone.
  if (links_.count(from)) close_link(from, false);
  if (m.run != cfg_.run) {
    ++counters_.other_run;
    actions_.push_back(OtherRun{from, run_differences(cfg_.run, m.run), false});
    return send(m.self, Refusal{cfg_.run});
  }
  apply({m.self, PeerState::alive}, now, true, Origin::own);
  tell_if_gone(from);
  send(m.self, Welcome{self_, sample(static_cast<size_t>(cfg_.welcome_size), &from), cfg_.run,
                       observed.substr(0, kMaxAddrLen)});
  // Dialled on a connection of its own: the Welcome above goes back the way the Hello came. A joiner
  // listening on every interface is dialled where we saw it come from, at its port: behind NAT that
  // works only where the port is forwarded, which is what the dial-back is there to find out.
  std::string target = m.dial_back;
  if (wildcard_host(target) && !observed.empty())
    target = "tcp://" + (observed.find(':') != std::string::npos ? "[" + observed + "]" : observed) +
             target.substr(target.rfind(':'));
  if (!target.empty() && target.size() <= kMaxAddrLen && may_dial_back(from, now)) {
    actions_.push_back(DialBack{{from, target, m.self.incarnation}, Reachable{target}});
    ++counters_.dial_backs;
  }
}

bool Membership::may_dial_back(const PeerId& id, Millis now) {
  const auto it = dialed_.find(id);
  if (it != dialed_.end() && now - it->second < cfg_.dial_back_interval) return false;
  if (it == dialed_.end() && dialed_.size() >= cfg_.max_members) {
    std::erase_if(dialed_, [&](const auto& e) { return now - e.second >= cfg_.dial_back_interval; });
    if (dialed_.size() >= cfg_.max_members) return false;
  }
  dialed_[id] = now;
  return true;
}

// Someone reached our candidate address: advertise it, at a new incarnation so that our word replaces the
// empty address everywhere. Anyone admitted may claim so: a liar only makes us advertise an address that
// fails, which its own misbehaviour costs us anyway (docs/membership.md).
void Membership::handle(const PeerId& from, const Reachable& m, Millis) {
  const auto port = [](const std::string& a) { return a.substr(std::min(a.size(), a.rfind(':'))); };
  const bool ours = m.addr == candidate_ || (wildcard_host(candidate_) && port(m.addr) == port(candidate_));
  if (!self_.addr.empty() || candidate_.empty() || !ours) return ignore();
  self_.addr = m.addr;
  if (self_.incarnation < kMaxIncarnation) ++self_.incarnation;
  reach_deadline_ = std::numeric_limits<Millis>::max();
  actions_.push_back(Reachability{true, self_.addr, observed_, from});
}

// At a relay: both ends must be live members nobody can dial, the callee one we can reach (its route).
void Membership::handle(const PeerId& from, const RelayRequest& m, Millis) {
  const Member* caller = live(from);
  const Member* callee = live(m.target);
  if (!cfg_.relay || self_.addr.empty() || caller == nullptr || callee == nullptr || m.target == from ||
      !caller->info.addr.empty() || !callee->info.addr.empty() || !callee->heard_directly)
    return ignore();
  actions_.push_back(OpenRelay{caller->info, callee->info});
  ++counters_.relays_opened;
}

void Membership::handle(const PeerId& from, const RelayOffer& m, Millis now) {
  const Member* relay = live(from);
  const Member* peer = live(m.peer);
  if (relay == nullptr || relay->info.addr.empty() || peer == nullptr || m.addr.empty() || m.peer == self_.id)
    return ignore();
  if (m.callee) {
    actions_.push_back(UseRelay{m.peer, m.addr, true});
    return;
  }
  const auto asked = relay_asked_.find(m.peer);
  if (asked == relay_asked_.end() || links_.count(m.peer) || pending_links_.count(m.peer)) return ignore();
  relay_asked_.erase(asked);
  relayed_[m.peer] = m.addr;
  actions_.push_back(UseRelay{m.peer, m.addr, false});
  const uint64_t epoch = rng_.next() | 1;
  pending_links_[m.peer] = {epoch, now + cfg_.link_request_timeout};
  send(peer->info, LinkRequest{epoch, degree_with(1), run_digest_});
}

// Answered over the asker's own connection (no address): it is not a member, and does not become one.
void Membership::handle(const PeerId& from, const RunQuery&, Millis) {
  PeerInfo asker;
  asker.id = from;
  send(asker, RunInfo{cfg_.run});
}
void Membership::handle(const PeerId&, const RunInfo&, Millis) { ignore(); }  // read by the asker's driver

void Membership::ask_relay(Millis now) {
  if (!self_.addr.empty() || now < next_relay_) return;
  next_relay_ = now + cfg_.relay_retry;
  std::erase_if(relay_asked_, [&](const auto& e) { return now - e.second >= 4 * cfg_.relay_retry; });
  std::vector<const Member*> relays, peers;
  for (uint32_t slot : alive_) {
    const Member& m = members_.at(slot);
    if (!m.info.addr.empty()) {
      relays.push_back(&m);
    } else if (!links_.count(m.info.id) && !pending_links_.count(m.info.id) &&
               !distrusted_.count(m.info.id) && !relay_asked_.count(m.info.id)) {
      peers.push_back(&m);
    }
  }
  if (relays.empty() || peers.empty() || relay_asked_.size() >= cfg_.max_members) return;
  const Member* peer = peers[rng_.below(peers.size())];
  relay_asked_[peer->info.id] = now;
  ++counters_.relays_asked;
  send(relays[rng_.below(relays.size())]->info, RelayRequest{peer->info.id});
}

void Membership::run_reachability(Millis now) {
  if (now < reach_deadline_) return;
  reach_deadline_ = std::numeric_limits<Millis>::max();
  if (self_.addr.empty()) actions_.push_back(Reachability{false, candidate_, observed_, {}});
}

void Membership::handle(const PeerId& from, const Welcome& m, Millis now) {
  if (m.self.id != from || !valid(m.self)) return ignore();
  if (m.run != cfg_.run) return refused_by(from, m.run, now);  // its sample is of another run too
  apply({m.self, PeerState::alive}, now, false, Origin::own);
  merge_sample(from, m.sample, now);
  tell_if_gone(from);
  joined_ = true;
  // Not dialable yet: give the welcomer's dial-back time to arrive (at once when there is none to wait for).
  if (self_.addr.empty()) {
    if (!m.observed.empty()) observed_ = m.observed;
    if (reach_deadline_ == std::numeric_limits<Millis>::max())
      reach_deadline_ = candidate_.empty() ? now : now + cfg_.dial_check_timeout;
  }
}

void Membership::handle(const PeerId& from, const Shuffle& m, Millis now) {
  if (other_run(m.run_digest)) return;
  merge_sample(from, m.sample, now);  // Cyclon: the sender includes itself
  const Member* sender = live(from);
  if (m.reply || sender == nullptr) return;
  auto reply = sample(static_cast<size_t>(cfg_.shuffle_size) - 1, &from);
  reply.push_back(self_);
  send(sender->info, Shuffle{std::move(reply), true, run_digest_});
}

void Membership::merge_sample(const PeerId& from, const std::vector<PeerInfo>& sample, Millis now) {
  prefetch_members(bounded(sample), [&](size_t i) -> const PeerId& { return sample[i].id; });
  for (size_t i = 0; i < bounded(sample); ++i)
    apply({sample[i], PeerState::alive}, now, false, origin_of(from, sample[i].id));
}

void Membership::apply_all(const PeerId& from, const std::vector<MemberUpdate>& updates, Millis now) {
  prefetch_members(bounded(updates), [&](size_t i) -> const PeerId& { return updates[i].peer.id; });
  for (size_t i = 0; i < bounded(updates); ++i)
    apply(updates[i], now, true, origin_of(from, updates[i].peer.id));
}

template <class IdOf>
void Membership::prefetch_members(size_t n, IdOf id_of) const {
  for (size_t i = 0; i < n; ++i) members_.prefetch(id_of(i));
  for (size_t i = 0; i < n; ++i) members_.prefetch_value(id_of(i));
}

// -- failure detection -------------------------------------------------------------

void Membership::handle(const PeerId& from, const Ping& m, Millis now) {
  if (other_run(m.run_digest)) return;
  apply_all(from, m.updates, now);
  const Member* sender = members_.get(from);  // the sender's own claim above makes it known
  if (sender == nullptr) return ignore();
  send(sender->info, Ack{m.seq, self_.id, piggyback(from), run_digest_});
}

void Membership::handle(const PeerId& from, const Ack& m, Millis now) {
  if (other_run(m.run_digest)) return;
  apply_all(from, m.updates, now);
  if (m.seq == 0) return;
  if (probe_ && m.seq == probe_->seq && m.target == probe_->target &&
      (from == probe_->target || probe_->indirect)) {
    probe_->acked = true;
    return;
  }
  auto relay = std::find_if(relays_.begin(), relays_.end(),
                            [&](const Relay& r) { return r.seq == m.seq && r.target == from; });
  if (relay == relays_.end()) return;
  if (const Member* requester = live(relay->requester))
    send(requester->info, Ack{relay->their_seq, relay->target, piggyback(relay->requester), run_digest_});
  relays_.erase(relay);
}

void Membership::handle(const PeerId& from, const PingReq& m, Millis now) {
  const PeerId& target = m.target.id;
  if (live(from) == nullptr || target == self_.id || target == from || relays_.size() >= cfg_.max_relays)
    return ignore();
  // Probe the address we know; the requester's copy only for a peer we have not heard of.
  PeerInfo to = m.target;
  if (const Member* known = members_.get(target)) {
    if (gone(known->state)) return ignore();
    to = known->info;
  } else if (to.addr.empty() || !valid(to)) {
    return ignore();
  }
  const uint64_t seq = next_seq_++;
  relays_.push_back({seq, m.seq, from, target, now + cfg_.probe_interval});
  send(to, Ping{seq, piggyback(target), run_digest_});
}

void Membership::run_probe(Millis now) {
  std::erase_if(relays_, [&](const Relay& r) { return r.deadline <= now; });
  if (probe_) {
    // Look the target up only when a deadline is due: this runs every tick, for every peer of a swarm.
    const bool timed_out = !probe_->acked && !probe_->indirect && now >= probe_->started + cfg_.probe_timeout;
    if (!timed_out && now < probe_->started + cfg_.probe_interval) return;
    const Member* target = live(probe_->target);
    if (timed_out && target) {
      probe_->indirect = true;
      for (const PeerInfo& helper : sample(static_cast<size_t>(cfg_.indirect_probes), &probe_->target)) {
        if (const Member* h = members_.get(helper.id); h == nullptr || !reachable(*h)) continue;
        send(helper, PingReq{probe_->seq, target->info});
        ++counters_.indirect_probes;
      }
    }
    if (now < probe_->started + cfg_.probe_interval) return;
    if (!probe_->acked && target && target->state == PeerState::alive) {
      ++counters_.suspicions;
      apply({target->info, PeerState::suspect}, now, true, Origin::local);
    }
    probe_.reset();
  }
  if (now < next_probe_) return;
  next_probe_ = now + cfg_.probe_interval;
  // Round-robin over a shuffled list (SWIM's bound on first detection time) of the members we can reach:
  // a fresh list may hold none (only outbound-only peers that never contacted us), and then nobody is
  // probed this period.
  for (bool rebuilt = false;;) {
    if (probe_pos_ >= probe_order_.size()) {
      if (rebuilt) return;
      rebuilt = true;
      probe_order_.clear();
      for (const auto& s : members_.slots())
        if (s.used && !gone(s.value.state) && reachable(s.value)) probe_order_.push_back(s.key);
      for (size_t i = probe_order_.size(); i > 1; --i)
        std::swap(probe_order_[i - 1], probe_order_[rng_.below(i)]);
      probe_pos_ = 0;
      if (probe_order_.empty()) return;
    }
    const PeerId id = probe_order_[probe_pos_++];
    if (const Member* m = live(id); m != nullptr && reachable(*m)) {
      probe_ = Probe{id, next_seq_++, now, false, false};
      ++counters_.probes;
      send(m->info, Ping{probe_->seq, piggyback(id), run_digest_});
      return;
    }
  }
}

Millis Membership::expiry(const Member& m) const {
  if (m.state == PeerState::suspect) return m.since + cfg_.suspicion_timeout;
  if (gone(m.state)) return m.since + cfg_.dead_retention;
  return std::numeric_limits<Millis>::max();
}

std::vector<uint32_t>* Membership::list_of(PeerState s) {
  return s == PeerState::alive ? &alive_ : s == PeerState::dead ? &dead_ : nullptr;
}

void Membership::set_state(uint32_t slot, PeerState state, Millis now) {
  Member& m = members_.at(slot);
  const PeerState before = m.state;
  m.state = state;
  m.since = now;
  live_count_ += !gone(state);
  live_count_ -= !gone(before);
  if (before != state) {
    if (std::vector<uint32_t>* from = list_of(before)) {  // swap-remove
      const uint32_t last = from->back();
      (*from)[m.listed_at] = last;
      members_.at(last).listed_at = m.listed_at;
      from->pop_back();
    }
    if (std::vector<uint32_t>* to = list_of(state)) {
      m.listed_at = to->size();
      to->push_back(slot);
    }
  }
  if (state != PeerState::alive) expiries_.push({expiry(m), m.info.id});
}

void Membership::forget(const PeerId& id) {
  const uint32_t slot = members_.find(id);
  if (slot == MemberTable::npos) return;
  set_state(slot, PeerState::left, members_.at(slot).since);  // off the lists and counts
  members_.erase(id);
}

void Membership::run_suspicions(Millis now) {
  while (!expiries_.empty() && expiries_.top().first <= now) {
    const auto [at, id] = expiries_.top();
    expiries_.pop();
    const Member* m = members_.get(id);
    if (m == nullptr || expiry(*m) != at) continue;  // stale: the member moved on
    if (m->state == PeerState::suspect) {
      ++counters_.deaths;
      apply({m->info, PeerState::dead}, now, true, Origin::local);
    } else {
      forget(id);
    }
  }
}

void Membership::apply(const MemberUpdate& u, Millis now, bool spread, Origin origin) {
  if (!valid(u.peer) || u.peer.incarnation > kMaxIncarnation) return;
  if (u.peer.id == self_.id) {
    // Refuted when about our incarnation or the one above (as far as hearsay can lift us anywhere,
    // see below). Nobody honest holds a higher one: obeying it would let a liar push us to the bound.
    const uint64_t claimed = u.peer.incarnation;
    if (u.state != PeerState::alive && claimed >= self_.incarnation && claimed - self_.incarnation <= 1)
      refute(claimed);
    return;
  }
  auto newer = [](const MemberUpdate& a, const Member& b) {
    return std::pair(a.peer.incarnation, rank(a.state)) > std::pair(b.info.incarnation, rank(b.state));
  };
  uint32_t slot = members_.find(u.peer.id);
  const bool known = slot != MemberTable::npos;
  MemberUpdate fact = u;  // what we will hold
  if (known) {
    Member& m = members_.at(slot);
    if (origin == Origin::own) {
      // A peer speaks for itself as alive (or left, by Bye), and its word replaces hearsay
      // outright: a liar may have introduced it with a false address or incarnation.
      if (u.state == PeerState::suspect || u.state == PeerState::dead) return;
      if (!m.heard_directly) {
        m.heard_directly = true;
        m.vouched = u.peer.incarnation;
        if (m.info == u.peer && m.state == u.state) return;  // the hearsay was right
      } else {
        m.vouched = std::max(m.vouched, u.peer.incarnation);
        if (!newer(u, m)) return;
      }
    } else if (origin == Origin::hearsay) {
      // A third party's word is not authentic. It never changes a peer's address or declares it dead,
      // and it raises an incarnation at most one above what the peer itself told us, which is what a
      // refutation takes: anything beyond, or news that a tombstone is alive, makes us ask the peer.
      if (u.state == PeerState::alive) {
        if (gone(m.state) || u.peer.incarnation > m.vouched + 1) {
          if (u.peer.incarnation > m.info.incarnation) ask(m, now);
          return;
        }
        // Except to give an address to a peer we know none for (an outbound-only peer that a dial-back
        // found dialable, whose own word may never reach us): a false one fails the CURVE handshake,
        // which checks the peer's key, and the peer's own word replaces it.
        if (!m.info.addr.empty()) fact.peer.addr = m.info.addr;
      } else {
        // A suspicion, death or leave claim: our own suspicion at the incarnation we hold, which the
        // peer can refute.
        if (m.state != PeerState::alive || u.peer.incarnation < m.info.incarnation) return;
        fact = {m.info, PeerState::suspect};
      }
      if (!newer(fact, m)) return;
    } else if (!newer(fact, m)) {
      return;
    }
  } else {
    // Hearsay introduces a peer only as alive; a peer announces itself alive or left.
    const bool introduces = u.state == PeerState::alive || origin == Origin::local ||
                            (origin == Origin::own && u.state == PeerState::left);
    if (!introduces) return;
    if (members_.size() >= cfg_.max_members) {
      // Full: make room only by forgetting the oldest tombstone.
      const MemberTable::Slot* oldest = nullptr;
      for (const auto& s : members_.slots())
        if (s.used && gone(s.value.state) && (oldest == nullptr || s.value.since < oldest->value.since))
          oldest = &s;
      if (oldest == nullptr) return;
      forget(PeerId(oldest->key));
    }
    slot = members_.insert(fact.peer.id).first;
    members_.at(slot) = Member{fact.peer};  // state left until set_state
    members_.at(slot).heard_directly = origin == Origin::own;
    members_.at(slot).vouched = fact.peer.incarnation;
  }
  Member& m = members_.at(slot);
  const PeerState before = known ? m.state : PeerState::left;
  m.info = fact.peer;
  // Also a suspicion at a higher incarnation: a new suspicion, a new deadline.
  set_state(slot, fact.state, now);
  if (!known || before != fact.state) {
    if (known || !gone(fact.state)) actions_.push_back(MemberEvent{m.info, m.state});
  }
  // Whoever starts suspecting a peer tells it at once: the Ack to that Ping carries
  // the refutation straight back, instead of racing the suspicion timers by gossip.
  if (fact.state == PeerState::suspect && before != PeerState::suspect) {
    m.asked = now;
    send(m.info, Ping{0, piggyback(fact.peer.id), run_digest_});
  }
  if (gone(fact.state) && !gone(before)) {
    if (links_.count(fact.peer.id)) close_link(fact.peer.id, true);
    pending_links_.erase(fact.peer.id);
    relayed_.erase(fact.peer.id);
  }
  if (spread) {
    broadcasts_.push(fact);
  }
}

void Membership::refute(uint64_t incarnation) {
  if (incarnation >= kMaxIncarnation) return;
  self_.incarnation = incarnation + 1;
  ++counters_.refutations;
}

void Membership::ask(Member& m, Millis now) {
  if (now - cfg_.probe_timeout < m.asked) return;
  m.asked = now;
  send(m.info, Ping{0, piggyback(m.info.id), run_digest_});
}

void Membership::tell_if_gone(const PeerId& id) {
  const Member* m = members_.get(id);
  if (m != nullptr && gone(m->state)) send(m->info, Ping{0, piggyback(id), run_digest_});
}

// Our own alive claim first (so a receiver that has not heard of us can answer),
// then what we think of the receiver if it is not alive (so it can refute), then
// the least-sent queued updates.
std::vector<MemberUpdate> Membership::piggyback(const PeerId& to) {
  std::vector<MemberUpdate> out;
  out.reserve(static_cast<size_t>(cfg_.max_piggyback));
  out.push_back({self_, PeerState::alive});
  if (const Member* m = members_.get(to); m != nullptr && m->state != PeerState::alive)
    out.push_back({m->info, m->state});
  const int limit = cfg_.retransmit_mult * static_cast<int>(std::ceil(std::log2(double(live_count_) + 2.0)));
  const size_t room = static_cast<size_t>(cfg_.max_piggyback) - out.size();
  broadcasts_.take(to, room, limit, out);
  return out;
}

// -- membership timers ---------------------------------------------------------------

void Membership::run_join(Millis now) {
  check_join_refused(now);
  if (join_addrs_.empty() || join_failed_ || now < next_join_) return;
  // Retry until welcomed, and again whenever we have lost every live member.
  if (joined_ && live_count_ > 0) return;
  for (const std::string& addr : join_addrs_) {
    actions_.push_back(SendToAddr{addr, hello()});
    ++counters_.messages_out;
  }
  next_join_ = now + cfg_.join_retry;
}

void Membership::run_sampling(Millis now) {
  if (now >= next_shuffle_) {
    next_shuffle_ = now + cfg_.shuffle_interval;
    auto partner = sample(1, nullptr);
    const Member* p = partner.empty() ? nullptr : members_.get(partner[0].id);
    if (p != nullptr && reachable(*p)) {
      auto offer = sample(static_cast<size_t>(cfg_.shuffle_size) - 1, &partner[0].id);
      offer.push_back(self_);
      send(partner[0], Shuffle{std::move(offer), false, run_digest_});
    }
  }
  // Partition healing: a peer we declared dead may be alive behind a healed
  // partition; a Hello makes each side tell the other it is dead, both refute.
  if (now >= next_rejoin_) {
    next_rejoin_ = now + cfg_.rejoin_interval;
    if (!dead_.empty()) send(members_.at(dead_[rng_.below(dead_.size())]).info, hello());
  }
}

// -- neighbour links -----------------------------------------------------------------

void Membership::handle(const PeerId& from, const LinkRequest& m, Millis now) {
  if (other_run(m.run_digest)) return;
  const Member* member = members_.get(from);
  if (member == nullptr) return ignore();  // no address to answer to
  const PeerInfo peer = member->info;
  if (member->state != PeerState::alive) return send(peer, LinkReject{m.link_epoch});
  if (auto l = links_.find(from); l != links_.end()) {
    // Our request won a crossing and its Accept beat their request here: stale.
    if (l->second.ours && self_.id < from && now < l->second.opened + cfg_.link_request_timeout)
      return send(peer, LinkReject{m.link_epoch});
    // Otherwise it dropped its side (restart, lost LinkClose): its request supersedes ours.
    close_link(from, false);
  }
  if (auto mine = pending_links_.find(from); mine != pending_links_.end()) {
    // Both asked at once: the smaller id's request wins, on both sides.
    if (self_.id < from) return send(peer, LinkReject{m.link_epoch});
    pending_links_.erase(mine);
  }
  if (links_.size() + pending_links_.size() >= static_cast<size_t>(cfg_.max_degree) ||
      distrusted_.count(from))
    return send(peer, LinkReject{m.link_epoch});
  open_link(peer, m.link_epoch, m.degree, false, now);
  send(peer, LinkAccept{m.link_epoch, degree_with(0)});
}

void Membership::handle(const PeerId& from, const LinkAccept& m, Millis now) {
  auto pending = pending_links_.find(from);
  const Member* peer = live(from);
  if (pending == pending_links_.end() || pending->second.epoch != m.link_epoch || peer == nullptr ||
      peer->state != PeerState::alive) {
    // Late or unwanted: undo the other side's link.
    if (peer) send(peer->info, LinkClose{m.link_epoch});
    return ignore();
  }
  pending_links_.erase(pending);
  open_link(peer->info, m.link_epoch, m.degree, true, now);
}

void Membership::handle(const PeerId& from, const LinkReject& m, Millis) {
  auto pending = pending_links_.find(from);
  if (pending == pending_links_.end() || pending->second.epoch != m.link_epoch) return ignore();
  pending_links_.erase(pending);
  ++counters_.link_rejects;
}

void Membership::handle(const PeerId& from, const LinkClose& m, Millis) {
  if (auto l = links_.find(from); l != links_.end() && l->second.epoch == m.link_epoch)
    return close_link(from, false);
  if (auto p = pending_links_.find(from); p != pending_links_.end() && p->second.epoch == m.link_epoch)
    return static_cast<void>(pending_links_.erase(p));
  ignore();
}

void Membership::handle(const PeerId& from, const Payload& m, Millis) {
  if (auto l = links_.find(from); l != links_.end() && l->second.epoch == m.link_epoch) return;
  if (const Member* member = members_.get(from)) send(member->info, LinkClose{m.link_epoch});
}

void Membership::handle(const PeerId& from, const Bye& m, Millis now) {
  const Member* member = members_.get(from);
  if (member == nullptr) return ignore();
  PeerInfo info = member->info;
  info.incarnation = m.incarnation;  // a Bye from an earlier incarnation changes nothing
  apply({info, PeerState::left}, now, true, Origin::own);
}

// State transfer belongs to the training layer.
void Membership::handle(const PeerId&, const StateRequest&, Millis) { ignore(); }
void Membership::handle(const PeerId&, const StateChunk&, Millis) { ignore(); }

// -- peers of another run ------------------------------------------------------------

void Membership::handle(const PeerId& from, const Refusal& m, Millis now) {
  if (m.run == cfg_.run) return ignore();  // names no difference: not a refusal
  refused_by(from, m.run, now);
}

bool Membership::other_run(uint64_t digest) {
  if (digest == run_digest_) return false;
  ++counters_.other_run;
  ignore();
  return true;
}

void Membership::refused_by(const PeerId& from, const RunIdentity& theirs, Millis now) {
  ++counters_.other_run;
  OtherRun report{from, run_differences(cfg_.run, theirs), true};
  // Only a joiner gives up: a peer that was admitted once (or never asked anyone) keeps its swarm.
  if (!joined_ && !join_failed_ && !join_addrs_.empty() && refusers_.size() < kMaxJoinAddrs) {
    if (refusers_.empty()) {
      first_refusal_ = now;
      refusal_ = {from, report.differences};
    }
    refusers_.insert(from);
  }
  actions_.push_back(std::move(report));
  check_join_refused(now);
}

void Membership::check_join_refused(Millis now) {
  if (joined_ || join_failed_ || refusers_.empty()) return;
  if (refusers_.size() < join_addrs_.size() && now < first_refusal_ + kRefusalGrace * cfg_.join_retry) return;
  join_failed_ = true;
  actions_.push_back(refusal_);
}

void Membership::run_links(Millis now) {
  for (auto it = pending_links_.begin(); it != pending_links_.end();) {
    if (now < it->second.deadline) {
      ++it;
      continue;
    }
    // Cancel: if the Accept was lost, the other side holds a link we do not.
    if (const Member* m = live(it->first)) send(m->info, LinkClose{it->second.epoch});
    it = pending_links_.erase(it);
  }
  // Re-sampling, one link at a time: an expired link is closed only while we
  // hold more than target_degree; otherwise a replacement is asked for first.
  const bool retiring = first_expiry_ <= now;
  if (retiring && links_.size() > static_cast<size_t>(cfg_.target_degree)) {
    auto expired = std::min_element(links_.begin(), links_.end(), [](const auto& a, const auto& b) {
      return a.second.expires < b.second.expires;
    });
    close_link(expired->first, true);
    return;
  }
  const size_t want = static_cast<size_t>(cfg_.target_degree) + (retiring ? 1 : 0);
  if (links_.size() + pending_links_.size() >= want) return;
  // Random live members not linked yet. A bounded number of draws, not a scan of every member: a peer
  // below its degree (its requests refused) tries again each tick, and a swarm has thousands.
  std::vector<const Member*> candidates;
  const size_t need = want - links_.size() - pending_links_.size();
  for (size_t tries = 0; tries < 4 * need + 8 && candidates.size() < need && !alive_.empty(); ++tries) {
    const Member* m = &members_.at(alive_[rng_.below(alive_.size())]);
    // Only peers others can dial: an outbound-only peer opens its links itself.
    if (!m->info.addr.empty() && !links_.count(m->info.id) && !pending_links_.count(m->info.id) &&
        !distrusted_.count(m->info.id) &&
        std::find(candidates.begin(), candidates.end(), m) == candidates.end())
      candidates.push_back(m);
  }
  if (candidates.size() < need) ask_relay(now);
  for (const Member* m : candidates) {
    const uint64_t epoch = rng_.next() | 1;  // random, so a restarted peer cannot reuse one
    pending_links_[m->info.id] = {epoch, now + cfg_.link_request_timeout};
    send(m->info, LinkRequest{epoch, degree_with(1), run_digest_});
  }
}

void Membership::open_link(const PeerInfo& peer, uint64_t epoch, uint32_t their_degree, bool ours,
                           Millis now) {
  links_[peer.id] = Link{peer, epoch, their_degree, ours, now, now + jittered(cfg_.link_lifetime)};
  update_first_expiry();
  ++counters_.links_opened;
  actions_.push_back(LinkUp{peer, epoch, their_degree});
}

void Membership::distrust(const PeerId& id) {
  if (distrusted_.size() >= cfg_.max_members) return;  // bounded like the member table
  distrusted_.insert(id);
  close_link(id, true);
  pending_links_.erase(id);
}

void Membership::close_link(const PeerId& id, bool notify) {
  auto l = links_.find(id);
  if (l == links_.end()) return;
  if (notify) send(l->second.peer, LinkClose{l->second.epoch});
  actions_.push_back(LinkDown{id, l->second.epoch});
  ++counters_.links_closed;
  relayed_.erase(id);  // a relayed link is its session: the next one is asked for afresh
  links_.erase(l);     // last: `id` may be this entry's own key
  update_first_expiry();
}

void Membership::update_first_expiry() {
  first_expiry_ = std::numeric_limits<Millis>::max();
  for (const auto& [id, l] : links_) first_expiry_ = std::min(first_expiry_, l.expires);
}

// -- helpers -----------------------------------------------------------------------

// A peer nobody can dial that we reach through a relay is sent to at the relay's port.
void Membership::send(const PeerInfo& to, Message m) {
  const auto r = to.addr.empty() ? relayed_.find(to.id) : relayed_.end();
  actions_.push_back(
      SendTo{r == relayed_.end() ? to : PeerInfo{to.id, r->second, to.incarnation}, std::move(m)});
  ++counters_.messages_out;
}

const Membership::Member* Membership::live(const PeerId& id) const {
  const Member* m = members_.get(id);
  return (m == nullptr || gone(m->state)) ? nullptr : m;
}

// Up to k distinct live members (alive ones only), chosen uniformly.
std::vector<PeerInfo> Membership::sample(size_t k, const PeerId* exclude) {
  const size_t n = alive_.size();
  std::vector<PeerInfo> out;
  auto excluded = [&](uint32_t slot) {
    return exclude != nullptr && same_id(members_.key_at(slot), *exclude);
  };
  if (k * 4 < n) {
    // Few of many: draw indices until k distinct ones (expected O(k) draws, no scan of the table).
    std::vector<size_t> picked;
    while (out.size() < k) {
      const size_t i = rng_.below(n);
      if (excluded(alive_[i]) || std::find(picked.begin(), picked.end(), i) != picked.end()) continue;
      picked.push_back(i);
      out.push_back(members_.at(alive_[i]).info);
    }
    return out;
  }
  std::vector<uint32_t> pool;
  for (uint32_t slot : alive_)
    if (!excluded(slot)) pool.push_back(slot);
  k = std::min(k, pool.size());
  for (size_t i = 0; i < k; ++i) {
    std::swap(pool[i], pool[i + rng_.below(pool.size() - i)]);
    out.push_back(members_.at(pool[i]).info);
  }
  return out;
}

Millis Membership::jittered(Millis mean) {
  return static_cast<Millis>(static_cast<double>(mean) * (0.5 + rng_.uniform()));
}

}  // namespace murmur::gossip

#include "gossip/membership.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace murmur::gossip {

namespace {

int rank(PeerState s) { return static_cast<int>(s); }  // alive < suspect < dead < left
bool gone(PeerState s) { return s == PeerState::dead || s == PeerState::left; }

bool valid(const PeerInfo& p) { return !p.addr.empty() && p.addr.size() <= kMaxAddrLen; }

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
  require(c.link_lifetime > 0 && c.link_request_timeout > 0,
          "link_lifetime and link_request_timeout must be > 0");
}

Membership::Membership(PeerInfo self, MembershipConfig cfg, uint64_t seed)
    : self_(std::move(self)), cfg_(cfg), rng_(mix64(seed)) {
  validate(cfg_);
  if (!valid(self_)) throw std::invalid_argument("membership: own address empty or too long");
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
  actions_.push_back(SendToAddr{addr, Hello{self_}});
  ++counters_.messages_out;
  next_join_ = now + cfg_.join_retry;
}

void Membership::on_message(const PeerId& from, const Message& m, Millis now) {
  ++counters_.messages_in;
  if (leaving_ || from == self_.id) return ignore();
  std::visit([&](const auto& msg) { handle(from, msg, now); }, m);
}

void Membership::tick(Millis now) {
  if (leaving_) return;
  run_join(now);
  run_probe(now);
  run_suspicions(now);
  run_sampling(now);
  run_links(now);
}

void Membership::leave(Millis) {
  if (leaving_) return;
  for (const auto& [id, m] : members_)
    if (!gone(m.state)) send(m.info, Bye{self_.incarnation});
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
  for (const auto& [id, m] : members_)
    if (!gone(m.state)) out.push_back(m.info);
  std::sort(out.begin(), out.end(),
            [](const PeerInfo& a, const PeerInfo& b) { return IdLess{}(a.id, b.id); });
  return out;
}

std::optional<PeerState> Membership::state_of(const PeerId& id) const {
  if (id == self_.id) return leaving_ ? PeerState::left : PeerState::alive;
  auto it = members_.find(id);
  if (it == members_.end()) return std::nullopt;
  return it->second.state;
}

std::optional<PeerInfo> Membership::info_of(const PeerId& id) const {
  if (id == self_.id) return self_;
  auto it = members_.find(id);
  if (it == members_.end()) return std::nullopt;
  return it->second.info;
}

std::vector<Neighbour> Membership::links() const {
  std::vector<Neighbour> out;
  for (const auto& [id, l] : links_) out.push_back({l.peer, l.epoch, l.their_degree});
  return out;
}

// -- joining and sampling --------------------------------------------------------

void Membership::handle(const PeerId& from, const Hello& m, Millis now) {
  if (m.self.id != from || !valid(m.self)) return ignore();
  // Only a fresh process (or one back from a partition) says Hello: whatever link we
  // hold with it, its side is gone.
  if (links_.count(from)) close_link(from, false);
  apply({m.self, PeerState::alive}, now, true);
  tell_if_gone(from);
  send(m.self, Welcome{self_, sample(static_cast<size_t>(cfg_.welcome_size), &from)});
}

void Membership::handle(const PeerId& from, const Welcome& m, Millis now) {
  if (m.self.id != from || !valid(m.self)) return ignore();
  apply({m.self, PeerState::alive}, now, false);
  merge_sample(m.sample, now);
  tell_if_gone(from);
  joined_ = true;
}

void Membership::handle(const PeerId& from, const Shuffle& m, Millis now) {
  merge_sample(m.sample, now);  // Cyclon: the sender includes itself
  const Member* sender = live(from);
  if (m.reply || sender == nullptr) return;
  auto reply = sample(static_cast<size_t>(cfg_.shuffle_size) - 1, &from);
  reply.push_back(self_);
  send(sender->info, Shuffle{std::move(reply), true});
}

void Membership::merge_sample(const std::vector<PeerInfo>& sample, Millis now) {
  for (size_t i = 0; i < bounded(sample); ++i) apply({sample[i], PeerState::alive}, now, false);
}

// -- failure detection -------------------------------------------------------------

void Membership::handle(const PeerId& from, const Ping& m, Millis now) {
  for (size_t i = 0; i < bounded(m.updates); ++i) apply(m.updates[i], now, true);
  auto it = members_.find(from);  // the sender's own claim above makes it known
  if (it == members_.end()) return ignore();
  send(it->second.info, Ack{m.seq, self_.id, piggyback(from)});
}

void Membership::handle(const PeerId& from, const Ack& m, Millis now) {
  for (size_t i = 0; i < bounded(m.updates); ++i) apply(m.updates[i], now, true);
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
    send(requester->info, Ack{relay->their_seq, relay->target, piggyback(relay->requester)});
  relays_.erase(relay);
}

void Membership::handle(const PeerId& from, const PingReq& m, Millis now) {
  const PeerId& target = m.target.id;
  if (live(from) == nullptr || target == self_.id || target == from || relays_.size() >= cfg_.max_relays)
    return ignore();
  // Probe the address we know; the requester's copy only for a peer we have not heard of.
  PeerInfo to = m.target;
  if (auto it = members_.find(target); it != members_.end()) {
    if (gone(it->second.state)) return ignore();
    to = it->second.info;
  } else if (!valid(to)) {
    return ignore();
  }
  const uint64_t seq = next_seq_++;
  relays_.push_back({seq, m.seq, from, target, now + cfg_.probe_interval});
  send(to, Ping{seq, piggyback(target)});
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
        send(helper, PingReq{probe_->seq, target->info});
        ++counters_.indirect_probes;
      }
    }
    if (now < probe_->started + cfg_.probe_interval) return;
    if (!probe_->acked && target && target->state == PeerState::alive) {
      ++counters_.suspicions;
      apply({target->info, PeerState::suspect}, now, true);
    }
    probe_.reset();
  }
  if (now < next_probe_) return;
  next_probe_ = now + cfg_.probe_interval;
  // Round-robin over a shuffled list (SWIM's bound on first detection time).
  while (true) {
    if (probe_pos_ >= probe_order_.size()) {
      probe_order_.clear();
      for (const auto& [id, m] : members_)
        if (!gone(m.state)) probe_order_.push_back(id);
      for (size_t i = probe_order_.size(); i > 1; --i)
        std::swap(probe_order_[i - 1], probe_order_[rng_.below(i)]);
      probe_pos_ = 0;
      if (probe_order_.empty()) return;
    }
    const PeerId id = probe_order_[probe_pos_++];
    if (const Member* m = live(id)) {
      probe_ = Probe{id, next_seq_++, now, false, false};
      ++counters_.probes;
      send(m->info, Ping{probe_->seq, piggyback(id)});
      return;
    }
  }
}

Millis Membership::expiry(const Member& m) const {
  if (m.state == PeerState::suspect) return m.since + cfg_.suspicion_timeout;
  if (gone(m.state)) return m.since + cfg_.dead_retention;
  return std::numeric_limits<Millis>::max();
}

std::vector<Membership::Member*>* Membership::list_of(PeerState s) {
  return s == PeerState::alive ? &alive_ : s == PeerState::dead ? &dead_ : nullptr;
}

void Membership::set_state(Member& m, PeerState state, Millis now) {
  const PeerState before = m.state;
  m.state = state;
  m.since = now;
  live_count_ += !gone(state);
  live_count_ -= !gone(before);
  if (before != state) {
    if (std::vector<Member*>* from = list_of(before)) {  // swap-remove
      Member* last = from->back();
      (*from)[m.listed_at] = last;
      last->listed_at = m.listed_at;
      from->pop_back();
    }
    if (std::vector<Member*>* to = list_of(state)) {
      m.listed_at = to->size();
      to->push_back(&m);
    }
  }
  if (state != PeerState::alive) expiries_.push({expiry(m), m.info.id});
}

void Membership::forget(const PeerId& id) {
  auto it = members_.find(id);
  if (it == members_.end()) return;
  set_state(it->second, PeerState::left, it->second.since);  // off the lists and counts
  members_.erase(it);
}

void Membership::run_suspicions(Millis now) {
  while (!expiries_.empty() && expiries_.top().first <= now) {
    const auto [at, id] = expiries_.top();
    expiries_.pop();
    auto it = members_.find(id);
    if (it == members_.end() || expiry(it->second) != at) continue;  // stale: the member moved on
    if (it->second.state == PeerState::suspect) {
      ++counters_.deaths;
      apply({it->second.info, PeerState::dead}, now, true);
    } else {
      forget(id);
    }
  }
}

void Membership::apply(const MemberUpdate& u, Millis now, bool spread) {
  if (!valid(u.peer)) return;
  if (u.peer.id == self_.id) {
    if (u.state != PeerState::alive && u.peer.incarnation >= self_.incarnation) refute(u.peer.incarnation);
    return;
  }
  auto it = members_.find(u.peer.id);
  const bool known = it != members_.end();
  if (known && std::pair(u.peer.incarnation, rank(u.state)) <=
                   std::pair(it->second.info.incarnation, rank(it->second.state)))
    return;
  if (!known) {
    if (members_.size() >= cfg_.max_members) {
      // Full: make room only by forgetting the oldest tombstone.
      auto oldest = members_.end();
      for (auto m = members_.begin(); m != members_.end(); ++m)
        if (gone(m->second.state) && (oldest == members_.end() || m->second.since < oldest->second.since))
          oldest = m;
      if (oldest == members_.end()) return;
      forget(PeerId(oldest->first));
    }
    it = members_.emplace(u.peer.id, Member{u.peer}).first;  // state left until set_state
  }
  Member& m = it->second;
  const PeerState before = known ? m.state : PeerState::left;
  m.info = u.peer;
  // Also a suspicion at a higher incarnation: a new suspicion, a new deadline.
  set_state(m, u.state, now);
  if (!known || before != u.state) {
    if (known || !gone(u.state)) actions_.push_back(MemberEvent{m.info, m.state});
  }
  // Whoever starts suspecting a peer tells it at once: the Ack to that Ping carries
  // the refutation straight back, instead of racing the suspicion timers by gossip.
  if (u.state == PeerState::suspect && before != PeerState::suspect)
    send(m.info, Ping{0, piggyback(u.peer.id)});
  if (gone(u.state) && !gone(before)) {
    if (links_.count(u.peer.id)) close_link(u.peer.id, true);
    pending_links_.erase(u.peer.id);
  }
  if (spread) {
    auto [b, fresh] = broadcasts_.try_emplace(u.peer.id);
    if (!fresh) by_sent_[size_t(b->second.sent)].erase(b->second.queued);
    b->second.update = u;
    b->second.sent = 0;
    queue_broadcast(b->second);
  }
}

void Membership::refute(uint64_t incarnation) {
  if (incarnation == std::numeric_limits<uint64_t>::max()) return;
  self_.incarnation = incarnation + 1;
  ++counters_.refutations;
}

void Membership::tell_if_gone(const PeerId& id) {
  auto it = members_.find(id);
  if (it != members_.end() && gone(it->second.state)) send(it->second.info, Ping{0, piggyback(id)});
}

// Our own alive claim first (so a receiver that has not heard of us can answer),
// then what we think of the receiver if it is not alive (so it can refute), then
// the least-sent queued updates.
std::vector<MemberUpdate> Membership::piggyback(const PeerId& to) {
  std::vector<MemberUpdate> out{{self_, PeerState::alive}};
  if (auto it = members_.find(to); it != members_.end() && it->second.state != PeerState::alive)
    out.push_back({it->second.info, it->second.state});
  const int limit = cfg_.retransmit_mult * static_cast<int>(std::ceil(std::log2(double(live_count_) + 2.0)));
  const size_t room = static_cast<size_t>(cfg_.max_piggyback) - out.size();
  std::vector<Broadcast*> taken;
  for (const std::list<Broadcast*>& bucket : by_sent_) {
    for (Broadcast* b : bucket) {
      if (taken.size() == room) break;
      if (!IdEq{}(b->update.peer.id, to)) taken.push_back(b);
    }
    if (taken.size() == room) break;
  }
  for (Broadcast* b : taken) {
    out.push_back(b->update);
    by_sent_[size_t(b->sent)].erase(b->queued);
    if (++b->sent >= limit)
      broadcasts_.erase(PeerId(b->update.peer.id));  // a copy: the key must outlive the node
    else
      queue_broadcast(*b);
  }
  return out;
}

void Membership::queue_broadcast(Broadcast& b) {
  if (by_sent_.size() <= size_t(b.sent)) by_sent_.resize(size_t(b.sent) + 1);
  std::list<Broadcast*>& bucket = by_sent_[size_t(b.sent)];
  b.queued = bucket.insert(bucket.end(), &b);
}

// -- membership timers ---------------------------------------------------------------

void Membership::run_join(Millis now) {
  if (join_addrs_.empty() || now < next_join_) return;
  // Retry until welcomed, and again whenever we have lost every live member.
  if (joined_ && live_count_ > 0) return;
  for (const std::string& addr : join_addrs_) {
    actions_.push_back(SendToAddr{addr, Hello{self_}});
    ++counters_.messages_out;
  }
  next_join_ = now + cfg_.join_retry;
}

void Membership::run_sampling(Millis now) {
  if (now >= next_shuffle_) {
    next_shuffle_ = now + cfg_.shuffle_interval;
    auto partner = sample(1, nullptr);
    if (!partner.empty()) {
      auto offer = sample(static_cast<size_t>(cfg_.shuffle_size) - 1, &partner[0].id);
      offer.push_back(self_);
      send(partner[0], Shuffle{std::move(offer), false});
    }
  }
  // Partition healing: a peer we declared dead may be alive behind a healed
  // partition; a Hello makes each side tell the other it is dead, both refute.
  if (now >= next_rejoin_) {
    next_rejoin_ = now + cfg_.rejoin_interval;
    if (!dead_.empty()) send(dead_[rng_.below(dead_.size())]->info, Hello{self_});
  }
}

// -- neighbour links -----------------------------------------------------------------

void Membership::handle(const PeerId& from, const LinkRequest& m, Millis now) {
  auto it = members_.find(from);
  if (it == members_.end()) return ignore();  // no address to answer to
  const PeerInfo peer = it->second.info;
  if (it->second.state != PeerState::alive) return send(peer, LinkReject{m.link_epoch});
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
  if (links_.size() + pending_links_.size() >= static_cast<size_t>(cfg_.max_degree))
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
  if (auto it = members_.find(from); it != members_.end()) send(it->second.info, LinkClose{m.link_epoch});
}

void Membership::handle(const PeerId& from, const Bye& m, Millis now) {
  auto it = members_.find(from);
  if (it == members_.end()) return ignore();
  PeerInfo info = it->second.info;
  info.incarnation = m.incarnation;  // a Bye from an earlier incarnation changes nothing
  apply({info, PeerState::left}, now, true);
}

// State transfer belongs to the training layer.
void Membership::handle(const PeerId&, const StateRequest&, Millis) { ignore(); }
void Membership::handle(const PeerId&, const StateChunk&, Millis) { ignore(); }

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
  auto expired = std::min_element(links_.begin(), links_.end(), [](const auto& a, const auto& b) {
    return a.second.expires < b.second.expires;
  });
  const bool retiring = expired != links_.end() && expired->second.expires <= now;
  if (retiring && links_.size() > static_cast<size_t>(cfg_.target_degree)) {
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
    const Member* m = alive_[rng_.below(alive_.size())];
    if (!links_.count(m->info.id) && !pending_links_.count(m->info.id) &&
        std::find(candidates.begin(), candidates.end(), m) == candidates.end())
      candidates.push_back(m);
  }
  for (const Member* m : candidates) {
    const uint64_t epoch = rng_.next() | 1;  // random, so a restarted peer cannot reuse one
    pending_links_[m->info.id] = {epoch, now + cfg_.link_request_timeout};
    send(m->info, LinkRequest{epoch, degree_with(1)});
  }
}

void Membership::open_link(const PeerInfo& peer, uint64_t epoch, uint32_t their_degree, bool ours,
                           Millis now) {
  links_[peer.id] = Link{peer, epoch, their_degree, ours, now, now + jittered(cfg_.link_lifetime)};
  ++counters_.links_opened;
  actions_.push_back(LinkUp{peer, epoch, their_degree});
}

void Membership::close_link(const PeerId& id, bool notify) {
  auto l = links_.find(id);
  if (l == links_.end()) return;
  if (notify) send(l->second.peer, LinkClose{l->second.epoch});
  actions_.push_back(LinkDown{id, l->second.epoch});
  ++counters_.links_closed;
  links_.erase(l);
}

// -- helpers -----------------------------------------------------------------------

void Membership::send(const PeerInfo& to, Message m) {
  actions_.push_back(SendTo{to, std::move(m)});
  ++counters_.messages_out;
}

const Membership::Member* Membership::live(const PeerId& id) const {
  auto it = members_.find(id);
  return (it == members_.end() || gone(it->second.state)) ? nullptr : &it->second;
}

// Up to k distinct live members (alive ones only), chosen uniformly.
std::vector<PeerInfo> Membership::sample(size_t k, const PeerId* exclude) {
  const size_t n = alive_.size();
  std::vector<PeerInfo> out;
  auto excluded = [&](const Member* m) { return exclude != nullptr && m->info.id == *exclude; };
  if (k * 4 < n) {
    // Few of many: draw indices until k distinct ones (expected O(k) draws, no scan of the table).
    std::vector<size_t> picked;
    while (out.size() < k) {
      const size_t i = rng_.below(n);
      if (excluded(alive_[i]) || std::find(picked.begin(), picked.end(), i) != picked.end()) continue;
      picked.push_back(i);
      out.push_back(alive_[i]->info);
    }
    return out;
  }
  std::vector<const Member*> pool;
  for (const Member* m : alive_)
    if (!excluded(m)) pool.push_back(m);
  k = std::min(k, pool.size());
  for (size_t i = 0; i < k; ++i) {
    std::swap(pool[i], pool[i + rng_.below(pool.size() - i)]);
    out.push_back(pool[i]->info);
  }
  return out;
}

Millis Membership::jittered(Millis mean) {
  return static_cast<Millis>(static_cast<double>(mean) * (0.5 + rng_.uniform()));
}

}  // namespace murmur::gossip

#include "node/peer/net_loop.h"

#include <algorithm>
#include <cstdio>

#include "gossip/peer_id.h"

namespace murmur::peer {

using gossip::Millis;

// Payloads handed to the transport per peer at a time (within its max_queued_payloads).
constexpr size_t kTransportQueue = 2;
constexpr gossip::Millis kLeaveDrainMs = 5000;  // most a leaving peer waits for its payloads to go out

namespace {
const char* state_name(gossip::PeerState s) {
  switch (s) {
    case gossip::PeerState::alive:
      return "alive";
    case gossip::PeerState::suspect:
      return "suspect";
    case gossip::PeerState::dead:
      return "dead";
    case gossip::PeerState::left:
      return "left";
  }
  return "?";
}
}  // namespace

NetLoop::NetLoop(net::Transport& transport, gossip::PeerInfo self, NetLoopOptions opt, PeerMailbox& mailbox,
                 run::JsonlLog* log, uint64_t seed)
    : transport_(transport),
      membership_(std::move(self), opt.membership, seed),
      opt_(std::move(opt)),
      mailbox_(mailbox),
      log_(log),
      t0_(std::chrono::steady_clock::now()) {
  if (opt_.relay) {
    relay_ = std::make_unique<net::RelayService>(net::RelayServiceConfig{
        opt_.relay_bind, opt_.relay_bandwidth_bps, 64, std::chrono::milliseconds(120'000)});
  }
  transport_.set_payload_filter(
      [this](const gossip::PeerId& from, uint64_t epoch) { return accepts_payload(from, epoch); });
}

NetLoop::~NetLoop() { transport_.set_payload_filter({}); }

Millis NetLoop::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0_)
      .count();
}

bool NetLoop::accepts_payload(const gossip::PeerId& from, uint64_t epoch) {
  // Ring segments come from any admitted peer (ZAP already checked the key): a ring member may start
  // sending before this peer's membership has heard of it, and a segment dropped then stalls the ring.
  if (epoch == gossip::kRingEpoch) return opt_.ring_payloads;
  const std::vector<gossip::Neighbour> links = membership_.links();
  if (std::any_of(links.begin(), links.end(),
                  [&](const gossip::Neighbour& l) { return l.peer.id == from && l.epoch == epoch; }))
    return true;
  // A link this peer does not hold: membership answers LinkClose, so the sender drops it too.
  membership_.on_message(from, gossip::Payload{epoch, 0, 0, 1, {}}, now_ms());
  return false;
}

void NetLoop::handle(net::Incoming&& in, Millis now) {
  if (auto* p = std::get_if<gossip::Payload>(&in.msg)) {
    // Payloads on links membership does not know are answered with LinkClose by it
    // (ring traffic of the baselines has no link); the training side decides about
    // the rest (sequence, snapshot, guard). The bytes move on: a model-sized copy here would hold up
    // this thread's probes.
    if (p->link_epoch != gossip::kRingEpoch) membership_.on_message(in.from, in.msg, now);
    if (!exchanged_ && log_) {  // how long joining took, through NAT and dial-backs included
      exchanged_ = true;
      log_->write({{"event", "first_exchange"}, {"peer", gossip::short_name(in.from)}, {"elapsed_ms", now}});
    }
    mailbox_.push_event(InPayload{in.from, p->link_epoch, p->seq, std::move(p->bytes)});
    return;
  }
  membership_.on_message(in.from, in.msg, now, in.observed);
}

void NetLoop::carry_out(Millis now) {
  (void)now;
  for (auto& action : membership_.take_actions()) {
    if (auto* s = std::get_if<gossip::SendTo>(&action)) {
      transport_.send(s->to, s->msg);
    } else if (auto* a = std::get_if<gossip::SendToAddr>(&action)) {
      transport_.send_to_addr(a->addr, a->msg);
    } else if (auto* d = std::get_if<gossip::DialBack>(&action)) {
      transport_.dial_back(d->to, d->msg);
    } else if (auto* r = std::get_if<gossip::Reachability>(&action)) {
      report(*r);
    } else if (auto* open = std::get_if<gossip::OpenRelay>(&action)) {
      open_relay(*open);
    } else if (auto* u = std::get_if<gossip::UseRelay>(&action)) {
      if (u->callee)
        transport_.connect_router(u->addr);
      else
        transport_.single_connection(u->addr);
      if (log_)
        log_->write({{"event", "relayed_link"},
                     {"peer", gossip::short_name(u->peer)},
                     {"addr", u->addr},
                     {"callee", u->callee}});
    } else if (auto* up = std::get_if<gossip::LinkUp>(&action)) {
      mailbox_.push_event(LinkEvent{true, up->peer, up->epoch, up->their_degree});
      if (log_)
        log_->write({{"event", "link_up"}, {"peer", gossip::short_name(up->peer.id)}, {"epoch", up->epoch}});
    } else if (auto* down = std::get_if<gossip::LinkDown>(&action)) {
      mailbox_.push_event(LinkEvent{false, gossip::PeerInfo{down->peer, {}, 0}, down->epoch, 0});
      if (log_)
        log_->write(
            {{"event", "link_down"}, {"peer", gossip::short_name(down->peer)}, {"epoch", down->epoch}});
    } else if (auto* o = std::get_if<gossip::OtherRun>(&action)) {
      const std::string who = gossip::short_name(o->peer);
      // On stderr when it is about this peer: a joiner that no peer admits stops with it (JoinRefused).
      if (o->refused_us)
        std::fprintf(stderr, "peer %s refused this peer, its run differs: %s\n", who.c_str(),
                     o->differences.c_str());
      else
        std::printf("refused peer %s, its run differs: %s\n", who.c_str(), o->differences.c_str());
      std::fflush(stdout);
      if (log_)
        log_->write({{"event", o->refused_us ? "refused_by" : "refused"},
                     {"peer", who},
                     {"differences", o->differences}});
    } else if (auto* j = std::get_if<gossip::JoinRefused>(&action)) {
      mailbox_.fail("no peer admitted this one: peer " + gossip::short_name(j->by) + " is of another run (" +
                    j->differences + "); every peer of a run needs the same settings");
    } else if (auto* m = std::get_if<gossip::MemberEvent>(&action)) {
      if (m->state == gossip::PeerState::dead || m->state == gossip::PeerState::left) {
        transport_.forget(m->peer.id);
        pending_.erase(m->peer.id);
      }
      if (log_)
        log_->write({{"event", "member"},
                     {"peer", gossip::short_name(m->peer.id)},
                     {"addr", m->peer.addr},
                     {"state", state_name(m->state)}});
    }
  }
  send_payloads();
}

// A session between two peers nobody can dial; each is told its port, the callee over its route.
void NetLoop::open_relay(const gossip::OpenRelay& r) {
  if (!relay_) return;
  net::RelaySessionPorts ports;
  try {
    ports = relay_->open(gossip::to_z85(r.caller.id) + gossip::to_z85(r.callee.id));
  } catch (const std::exception& e) {  // max_sessions reached, or no port to bind
    if (log_) log_->write({{"event", "relay_refused"}, {"reason", e.what()}});
    return;
  }
  const std::string at = "tcp://" + opt_.relay_host + ":";
  transport_.send(r.callee, gossip::RelayOffer{r.caller.id, at + std::to_string(ports.callee_port), true});
  transport_.send(r.caller, gossip::RelayOffer{r.callee.id, at + std::to_string(ports.caller_port), false});
  if (ports.created) {
    std::printf("relay: session %llu for %s -> %s on ports %u/%u\n",
                static_cast<unsigned long long>(ports.id), gossip::short_name(r.caller.id).c_str(),
                gossip::short_name(r.callee.id).c_str(), unsigned(ports.caller_port),
                unsigned(ports.callee_port));
    std::fflush(stdout);
  }
  if (log_)
    log_->write({{"event", "relay_session"},
                 {"caller", gossip::short_name(r.caller.id)},
                 {"callee", gossip::short_name(r.callee.id)},
                 {"caller_port", ports.caller_port},
                 {"callee_port", ports.callee_port},
                 {"created", ports.created}});
}

void NetLoop::report(const gossip::Reachability& r) {
  const std::string seen = r.observed.empty() ? "" : " (peers see it at " + r.observed + ")";
  if (r.dialable)
    std::printf("reachable: peer %s dialled this peer back at %s; advertised%s\n",
                gossip::short_name(r.by).c_str(), r.addr.c_str(), seen.c_str());
  else if (r.addr.empty())
    std::printf("reachability: outbound-only by --reachability%s; this peer opens its links itself\n",
                seen.c_str());
  else
    std::printf(
        "not reachable: no peer could dial %s%s; training outbound-only (it opens its links "
        "itself; behind NAT, forward the port and pass --advertise to be dialable)\n",
        r.addr.c_str(), seen.c_str());
  std::fflush(stdout);
  if (log_)
    log_->write({{"event", "reachability"},
                 {"dialable", r.dialable},
                 {"addr", r.addr},
                 {"observed", r.observed},
                 {"elapsed_ms", now_ms()}});
}

// In order per peer, so each link's sequence stays gap-free.
void NetLoop::send_payloads() {
  for (auto& out : mailbox_.take_sends()) pending_[out.to.id].push_back(std::move(out));
  for (auto it = pending_.begin(); it != pending_.end();) {
    auto& queue = it->second;
    while (!queue.empty() && transport_.queued_payloads(it->first) < kTransportQueue) {
      OutPayload& out = queue.front();
      // Where the peer is now: the training side's copy may predate its dial-back or a restart.
      if (auto now_at = membership_.info_of(out.to.id)) out.to = *now_at;
      payload_bytes_sent_ += out.bytes.size();
      transport_.send_payload(out.to, out.epoch, out.seq, std::move(out.bytes));
      queue.pop_front();
    }
    it = queue.empty() ? pending_.erase(it) : std::next(it);
  }
}

bool NetLoop::payloads_queued() const {
  if (!pending_.empty()) return true;
  const std::vector<gossip::PeerInfo> members = membership_.members();
  return std::any_of(members.begin(), members.end(),
                     [&](const gossip::PeerInfo& m) { return transport_.queued_payloads(m.id) > 0; });
}

void NetLoop::publish(double elapsed_s) {
  const net::TransportCounters& c = transport_.counters();
  NetView v;
  v.self = membership_.self();
  v.members = membership_.members();
  v.neighbours = membership_.degree();
  v.bytes_sent = c.total.bytes_out;
  v.bytes_received = c.total.bytes_in;
  for (const auto& [reason, n] : c.total.rejected) v.messages_rejected += n;
  v.reassembly_bytes = transport_.reassembly_bytes();
  if (opt_.metrics) net::export_counters(c, *opt_.metrics);
  if (opt_.metrics && relay_) net::export_relay_stats(relay_->stats(), *opt_.metrics);
  v.uplink_bytes_per_s = elapsed_s > 0 ? static_cast<double>(payload_bytes_sent_) / elapsed_s : 0;
  mailbox_.publish(std::move(v));
}

void NetLoop::run() {
  const Millis start = now_ms();
  for (const auto& addr : opt_.join) membership_.join(addr, start);
  Millis next_status = start + static_cast<Millis>(opt_.status_every_s * 1000);
  Millis next_publish = start;
  while (!mailbox_.stopping()) {
    for (net::Incoming& in : transport_.poll(std::chrono::milliseconds(10))) handle(std::move(in), now_ms());
    const Millis now = now_ms();
    for (const gossip::PeerId& p : mailbox_.take_distrusted()) membership_.distrust(p);
    membership_.tick(now);
    carry_out(now);
    if (now >= next_publish) {
      publish(static_cast<double>(now - start) / 1000.0);
      next_publish = now + 100;
    }
    if (opt_.status_every_s > 0 && now >= next_status && !opt_.quiet) {
      const NetView v = mailbox_.view();
      std::string relayed;
      if (relay_) {
        const net::RelayStats r = relay_->stats();
        relayed = " | relayed " + std::to_string(r.sessions.size()) + " sessions, " +
                  std::to_string((r.caller_to_callee + r.callee_to_caller) / 1000000) + " MB";
      }
      std::printf("net | peers %zu | neighbours %zu | sent %.2f MB | received %.2f MB | rejected %llu%s\n",
                  v.members.size(), v.neighbours, v.bytes_sent / 1e6, v.bytes_received / 1e6,
                  static_cast<unsigned long long>(v.messages_rejected), relayed.c_str());
      std::fflush(stdout);
      next_status = now + static_cast<Millis>(opt_.status_every_s * 1000);
    }
  }
  // Let the last deltas reach the neighbours first: Bye and LinkClose go on the control connection and
  // would overtake payloads still queued, and a neighbour would then mix without this peer's last round.
  const Millis drain_until = now_ms() + kLeaveDrainMs;
  while (now_ms() < drain_until && payloads_queued()) {
    for (net::Incoming& in : transport_.poll(std::chrono::milliseconds(10))) handle(std::move(in), now_ms());
    membership_.tick(now_ms());
    carry_out(now_ms());
  }
  // Leave gracefully, and give queued messages a moment to go out.
  membership_.leave(now_ms());
  carry_out(now_ms());
  const Millis until = now_ms() + 300;
  while (now_ms() < until) transport_.poll(std::chrono::milliseconds(20));
  publish(static_cast<double>(now_ms() - start) / 1000.0);
  if (relay_ && log_) {
    const net::RelayStats r = relay_->stats();
    log_->write({{"event", "relay_stats"},
                 {"sessions_opened", r.sessions_opened},
                 {"pairs", r.pairs},
                 {"caller_to_callee_bytes", r.caller_to_callee},
                 {"callee_to_caller_bytes", r.callee_to_caller}});
  }
}

}  // namespace murmur::peer

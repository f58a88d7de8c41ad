#include "node/net/transport.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "gossip/peer_id.h"
#include "gossip/wire.h"
#include "node/net/metrics.h"

namespace murmur::net {

namespace g = murmur::gossip;
namespace wire = murmur::gossip::wire;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kMonitorEndpoint = "inproc://murmur-router-monitor";
// HWM counts messages, not bytes (docs/stack.md): a few chunks in flight per bulk
// link bound the memory, while control messages are small.
constexpr int kBulkSndHwm = 16, kControlSndHwm = 1000, kRouterRcvHwm = 64;
constexpr int kReconnectIvlMaxMs = 5'000;
// Then return, so sends are pumped and what arrived is handled: a byte budget as well as a count, or a
// stream of 512 KiB chunks would keep a probe that arrived among them waiting for ~100 MiB of copies.
constexpr size_t kMaxFramesPerPoll = 256, kMaxBytesPerPoll = 2u << 20;

}  // namespace

g::PeerInfo parse_join_address(const std::string& text) {
  const size_t at = text.rfind('@');  // Z85 keys may contain '@' themselves
  if (at == std::string::npos) {
    throw std::invalid_argument("join address '" + text +
                                "' must be KEY@HOST:PORT (KEY: the peer's public key)");
  }
  const auto key = g::peer_id_from_z85(text.substr(0, at));
  if (!key)
    throw std::invalid_argument("join address '" + text + "': KEY is not a 40-character Z85 public key");
  const std::string hostport = text.substr(at + 1);
  const size_t colon = hostport.rfind(':');
  unsigned port = 0;
  const char* pb = hostport.data() + (colon == std::string::npos ? 0 : colon + 1);
  const char* pe = hostport.data() + hostport.size();
  const auto [ptr, ec] = std::from_chars(pb, pe, port);
  if (colon == std::string::npos || colon == 0 || ec != std::errc() || ptr != pe || pb == pe || port == 0 ||
      port > 65535) {
    throw std::invalid_argument("join address '" + text +
                                "': expected HOST:PORT after '@' with a port 1-65535");
  }
  if (hostport.size() + 6 > g::kMaxAddrLen)
    throw std::invalid_argument("join address '" + text + "' is too long");
  return {*key, "tcp://" + hostport, 0};
}

void export_counters(const TransportCounters& c, MetricsRegistry& m) {
  CounterFamily& dropped =
      m.counters("murmur_transport_dropped_total",
                 "Frames the transport dropped, by sender and reason (docs/protocol.md)", {"peer", "reason"});
  std::map<std::string, uint64_t> named;  // per reason, over the peers with a label of their own
  std::map<std::pair<std::string, std::string>, uint64_t> by_label;
  for (const auto& [id, link] : c.peers) {
    const std::string label = m.peer_label(id);
    if (label == kUnknownPeer) continue;
    for (const auto& [reason, n] : link.rejected) {
      by_label[{label, reason}] += n;
      named[reason] += n;
    }
  }
  for (const auto& [key, n] : by_label) dropped.set({key.first, key.second}, n);
  for (const auto& [reason, n] : c.total.rejected)
    if (n > named[reason]) dropped.set({kUnknownPeer, reason}, n - named[reason]);
  m.counters("murmur_transport_disconnects_total",
             "Connections to this peer's ROUTER that closed: departures, and frames over the size limit", {})
      .set({}, c.disconnects);
  m.counters("murmur_zap_admitted_total", "CURVE handshakes the allow-list admitted (ZAP)", {})
      .set({}, c.zap_admitted);
  m.counters("murmur_zap_denied_total", "CURVE handshakes the allow-list refused (ZAP)", {})
      .set({}, c.zap_denied);
}

std::string route_id(const g::PeerId& id, char kind) {
  std::string r = {'m', kind};
  r.append(reinterpret_cast<const char*>(id.data()), id.size());
  return r;
}

struct Transport::Outbound {
  std::string addr;
  bool routed = false;          // addr empty: reached over its own connections to our ROUTER (its routes)
  zmq::socket_t control, bulk;  // dialled peers only; bulk connects on the first payload (or eager_bulk)
  bool single = false;          // payloads on the control connection too (a relay's port)
  std::string dial_addr;        // routed: where the peer can be dialled, once its route is gone
  std::deque<zmq::message_t> control_queue;
  zmq::message_t chunk;  // the next payload chunk, built, when its connection could not take it yet
  bool chunk_ready = false;
  struct Pending {
    uint64_t link_epoch, seq;
    std::vector<uint8_t> bytes;
    uint32_t next_chunk, chunk_count;
  };
  std::deque<Pending> bulk_queue;
};

Transport::Transport(TransportConfig config) : config_(std::move(config)) {
  if (config_.chunk_bytes == 0 || config_.chunk_bytes > g::kMaxChunkBytes) {
    throw std::invalid_argument("chunk_bytes must be in 1.." + std::to_string(g::kMaxChunkBytes));
  }
  if (config_.max_payload_bytes / config_.chunk_bytes >= UINT32_MAX) {
    throw std::invalid_argument("max_payload_bytes needs more than 2^32 chunks");
  }
  if (config_.max_reassembly_bytes < config_.max_payload_bytes)
    throw std::invalid_argument("max_reassembly_bytes must hold at least one payload of max_payload_bytes");
  if (config_.reassembly_timeout.count() <= 0)
    throw std::invalid_argument("reassembly_timeout must be positive");
  // libzmq gives each new connection its least loaded I/O thread: with two, a peer's control
  // connection does not share one with its bulk connection, whose thread is busy encrypting chunks
  // (probe RTT p50 under a saturating transfer: ~10 ms with one, ~1-3 ms with two;
  // docs/experiments/transport.md).
  ctx_.set(zmq::ctxopt::io_threads, 2);
  zap_ = std::make_unique<ZapHandler>(ctx_, config_.admission);
  router_ = zmq::socket_t(ctx_, zmq::socket_type::router);
  configure_curve_server(router_, config_.keys);
  router_.set(zmq::sockopt::linger, 0);
  router_.set(zmq::sockopt::router_handover, 1);
  // A frame to a route that is not connected fails (EHOSTUNREACH) instead of vanishing: it waits.
  router_.set(zmq::sockopt::router_mandatory, 1);
  router_.set(zmq::sockopt::rcvhwm, kRouterRcvHwm);
  router_.set(zmq::sockopt::maxmsgsize, int64_t(kMaxFrameBytes));
  router_.set(zmq::sockopt::heartbeat_ivl, config_.heartbeat_ivl_ms);
  router_.set(zmq::sockopt::heartbeat_timeout, config_.heartbeat_timeout_ms);
  if (zmq_socket_monitor(router_.handle(), kMonitorEndpoint, ZMQ_EVENT_DISCONNECTED) != 0)
    throw zmq::error_t();
  monitor_ = zmq::socket_t(ctx_, zmq::socket_type::pair);
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(kMonitorEndpoint);
  try {
    router_.bind(config_.listen);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("cannot listen on '" + config_.listen + "': " + e.what());
  }
}

Transport::~Transport() { zmq_socket_monitor(router_.handle(), nullptr, 0); }

std::string Transport::endpoint() const { return router_.get(zmq::sockopt::last_endpoint); }

zmq::socket_t Transport::connect_dealer(const g::PeerInfo& to, int sndhwm, std::string routing_id) {
  zmq::socket_t s(ctx_, zmq::socket_type::dealer);
  configure_curve_client(s, config_.keys, to.id);
  s.set(zmq::sockopt::linger, config_.linger_ms);
  if (!routing_id.empty()) s.set(zmq::sockopt::routing_id, routing_id);
  s.set(zmq::sockopt::sndhwm, sndhwm);
  // What comes back: the peer's frames to us when it cannot dial us (our route).
  s.set(zmq::sockopt::rcvhwm, kRouterRcvHwm);
  s.set(zmq::sockopt::maxmsgsize, int64_t(kMaxFrameBytes));
  s.set(zmq::sockopt::reconnect_ivl_max, kReconnectIvlMaxMs);
  s.set(zmq::sockopt::heartbeat_ivl, config_.heartbeat_ivl_ms);
  s.set(zmq::sockopt::heartbeat_timeout, config_.heartbeat_timeout_ms);
  const auto dial = config_.dial_map.find(to.addr);
  const std::string& addr = dial == config_.dial_map.end() ? to.addr : dial->second;
  try {
    s.connect(addr);
  } catch (const zmq::error_t& e) {
    throw std::invalid_argument("cannot connect to '" + addr + "': " + e.what());
  }
  return s;
}

Transport::Outbound& Transport::outbound(const g::PeerInfo& to) {
  auto it = out_.find(to.id);
  std::unique_ptr<Outbound> moved;
  if (it != out_.end() && it->second->addr != to.addr) {
    Outbound& o = *it->second;
    // No address is news of nothing: a peer dialled at a join address (or before a restart) that
    // advertises none yet keeps that connection, which is also its way back to us (its route).
    if (to.addr.empty() && !o.routed) return o;
    // A peer that became dialable keeps being answered over its own connection while that lasts: a
    // dialled one would be a second path, unordered against the first (the ring's segments arrived out
    // of order across such a switch). try_send dials it once the route is gone.
    if (o.routed && !to.addr.empty()) {
      const auto route = routes_.find(to.id);
      if (route != routes_.end() && route->second) {
        o.dial_addr = to.addr;
        return o;
      }
    }
    // The peer moved, restarted elsewhere, or became dialable: what is queued goes the new way, a payload
    // half-sent from its first chunk again (the receiver starts over at a chunk 0).
    moved = std::move(it->second);
    out_.erase(it);
    it = out_.end();
  }
  if (it == out_.end()) {
    auto o = std::make_unique<Outbound>();
    if (moved) {
      o->control_queue = std::move(moved->control_queue);
      o->bulk_queue = std::move(moved->bulk_queue);
      if (!o->bulk_queue.empty()) o->bulk_queue.front().next_chunk = 0;
    }
    o->routed = true;
    if (!to.addr.empty()) dial(*o, to.id, to.addr);
    it = out_.emplace(to.id, std::move(o)).first;
  }
  return *it->second;
}

void Transport::dial(Outbound& o, const g::PeerId& to, const std::string& addr) {
  o.addr = addr;
  o.routed = false;
  o.single = single_.count(addr) > 0;
  const g::PeerInfo info{to, addr, 0};
  o.control = connect_dealer(info, kControlSndHwm, route_id(id(), 'c'));
  if (!o.single && (config_.eager_bulk || !o.bulk_queue.empty()))
    o.bulk = connect_dealer(info, kBulkSndHwm, route_id(id(), 'b'));
}

Transport::Sent Transport::try_send(Outbound& o, bool bulk, const g::PeerId& to, zmq::message_t& frame) {
  const size_t n = frame.size();
  if (!o.routed) {
    if (!(bulk && !o.single ? o.bulk : o.control).send(frame, zmq::send_flags::dontwait)) return Sent::later;
  } else {
    const auto route = routes_.find(to);
    if (route == routes_.end() || !route->second) return redial(o, bulk, to, frame);
    // Payloads take the peer's bulk connection, or its control one where it opened no bulk connection.
    bool sent = false;
    for (const char kind : bulk ? std::string_view("bc") : std::string_view("c")) {
      const std::string rid = route_id(to, kind);
      zmq::message_t head(rid.data(), rid.size());
      try {
        if (!router_.send(head, zmq::send_flags::dontwait | zmq::send_flags::sndmore)) return Sent::later;
      } catch (const zmq::error_t& e) {
        if (e.num() == EHOSTUNREACH) continue;
        throw;
      }
      // Once the routing id is taken, the frame is: ROUTER checks the pipe's room at the first part.
      sent = router_.send(frame, zmq::send_flags::dontwait).has_value();
      break;
    }
    if (!sent) return redial(o, bulk, to, frame);
  }
  for (LinkCounters* c : {&counters_.total, &counters_.peers[to]}) c->bytes_out += n;
  return Sent::yes;
}

// No route (not yet, or not any more): the peer is dialled where it became dialable, or the frame waits
// for it to connect, as a DEALER's wait for its connection (bounded by the queues' limits).
Transport::Sent Transport::redial(Outbound& o, bool bulk, const g::PeerId& to, zmq::message_t& frame) {
  (void)bulk, (void)frame;
  if (o.dial_addr.empty()) return Sent::later;
  dial(o, to, std::exchange(o.dial_addr, {}));
  // A payload half-sent over the route starts again at its first chunk (the receiver starts over at a
  // chunk 0); the next pump sends on the new connection.
  if (!o.bulk_queue.empty()) o.bulk_queue.front().next_chunk = 0;
  o.chunk_ready = false;
  return Sent::later;
}

void Transport::send(const g::PeerInfo& to, const g::Message& m) {
  Outbound& o = outbound(to);
  const std::vector<uint8_t> bytes = wire::encode(m);
  zmq::message_t frame(bytes.data(), bytes.size());
  const Sent sent = o.control_queue.empty() ? try_send(o, false, to.id, frame) : Sent::later;
  if (sent == Sent::yes) {
    ++counters_.total.messages_out, ++counters_.peers[to.id].messages_out;
  } else if (o.control_queue.size() < config_.max_queued_control) {
    o.control_queue.push_back(std::move(frame));
  } else {
    reject(&to.id, "queue_full", "control queue full, message not sent");
  }
}

void Transport::connect_router(const std::string& relay_addr) {
  if (!router_connects_.insert(relay_addr).second) return;
  try {
    router_.connect(relay_addr);
  } catch (const zmq::error_t& e) {
    router_connects_.erase(relay_addr);
    throw std::invalid_argument("cannot connect to relay '" + relay_addr + "': " + e.what());
  }
}

void Transport::dial_back(const g::PeerInfo& to, const g::Message& m) {
  if (to.addr.empty()) return;
  if (dial_backs_.size() >= kMaxDialBacks) {
    ++counters_.dial_backs_dropped;
    return;
  }
  // No routing id of ours: this connection must not take over our route at the peer.
  zmq::socket_t s = connect_dealer(to, 1, {});
  s.set(zmq::sockopt::linger, 0);
  const std::vector<uint8_t> bytes = wire::encode(m);
  zmq::message_t frame(bytes.data(), bytes.size());
  (void)s.send(frame, zmq::send_flags::dontwait);  // queued until the connection is up
  dial_backs_.push_back({std::move(s), Clock::now() + config_.dial_back_lifetime});
  ++counters_.dial_backs;
}

void Transport::send_to_addr(const std::string& join_address, const g::Message& m) {
  send(parse_join_address(join_address), m);
}

bool Transport::send_payload(const g::PeerInfo& to, uint64_t link_epoch, uint64_t seq,
                             std::vector<uint8_t> bytes) {
  if (bytes.size() > config_.max_payload_bytes) {
    throw std::invalid_argument("payload of " + std::to_string(bytes.size()) +
                                " bytes exceeds max_payload_bytes");
  }
  Outbound& o = outbound(to);
  if (o.bulk_queue.size() >= config_.max_queued_payloads) {
    reject(&to.id, "queue_full", "payload queue full, payload not sent");
    return false;
  }
  if (!o.routed && !o.single && !o.bulk) o.bulk = connect_dealer(to, kBulkSndHwm, route_id(id(), 'b'));
  const auto chunks =
      uint32_t(std::max<size_t>(1, (bytes.size() + config_.chunk_bytes - 1) / config_.chunk_bytes));
  o.bulk_queue.push_back({link_epoch, seq, std::move(bytes), 0, chunks});
  pump(to.id, o);
  return true;
}

size_t Transport::queued_payloads(const g::PeerId& to) const {
  const auto it = out_.find(to);
  return it == out_.end() ? 0 : it->second->bulk_queue.size();
}

// Sends what the sockets accept without blocking: queued control frames first,
// then payload chunks until the bulk socket's small HWM is reached.
void Transport::pump(const g::PeerId& to, Outbound& o) {
  while (!o.control_queue.empty()) {
    const Sent sent = try_send(o, false, to, o.control_queue.front());
    if (sent == Sent::later) break;
    o.control_queue.pop_front();
    ++counters_.total.messages_out, ++counters_.peers[to].messages_out;
  }
  // Build a chunk's frame only when the socket will take it: poll() pumps on every wake-up, and a
  // full socket would otherwise cost a discarded copy of a chunk each time (a route cannot be asked:
  // its built chunk waits in o.chunk). The frame is written in place into the message libzmq sends,
  // so each payload byte is copied once on this side.
  while (!o.bulk_queue.empty()) {
    Outbound::Pending& p = o.bulk_queue.front();
    if (!o.chunk_ready) {
      if (!o.routed && !((o.single ? o.control : o.bulk).get(zmq::sockopt::events) & ZMQ_POLLOUT)) return;
      const size_t begin = size_t(p.next_chunk) * config_.chunk_bytes;
      const size_t n = std::min(p.bytes.size() - begin, config_.chunk_bytes);
      const std::vector<uint8_t> header =
          wire::payload_chunk_header(p.link_epoch, p.seq, p.next_chunk, p.chunk_count, n);
      o.chunk.rebuild(header.size() + n);
      auto* dst = static_cast<uint8_t*>(o.chunk.data());
      std::memcpy(dst, header.data(), header.size());
      if (n != 0) std::memcpy(dst + header.size(), p.bytes.data() + begin, n);
      o.chunk_ready = true;
    }
    const Sent sent = try_send(o, true, to, o.chunk);
    if (sent == Sent::later) return;
    o.chunk_ready = false;
    if (++p.next_chunk == p.chunk_count) {
      reaper_.release(std::move(p.bytes));
      o.bulk_queue.pop_front();
      ++counters_.total.messages_out, ++counters_.peers[to].messages_out;
    }
  }
}

std::vector<Incoming> Transport::poll(std::chrono::milliseconds timeout) {
  std::vector<Incoming> got;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    bool waiting_route = false;  // a route's queue is full: no poll item says when it drains
    for (auto& [id, o] : out_) {
      pump(id, *o);
      waiting_route |= o->routed && (!o->control_queue.empty() || !o->bulk_queue.empty());
    }
    std::vector<zmq::pollitem_t> items = {{router_.handle(), 0, ZMQ_POLLIN, 0},
                                          {zap_->socket().handle(), 0, ZMQ_POLLIN, 0},
                                          {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
    constexpr size_t kFixed = 3;
    std::vector<std::pair<const g::PeerId*, zmq::socket_t*>> dealers;  // of items[kFixed + i]
    for (auto& [id, o] : out_) {
      for (const bool bulk : {false, true}) {
        zmq::socket_t& s = bulk ? o->bulk : o->control;
        if (!s) continue;  // a route, or no payload yet
        const bool queued = bulk ? !o->bulk_queue.empty()
                                 : !o->control_queue.empty() || (o->single && !o->bulk_queue.empty());
        items.push_back({s.handle(), 0, short(ZMQ_POLLIN | (queued ? ZMQ_POLLOUT : 0)), 0});
        dealers.emplace_back(&id, &s);
      }
    }
    // Rounded up: zmq::poll counts whole milliseconds, and the sub-millisecond rest of every
    // timeout, rounded down to 0, made this loop spin until the deadline.
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (waiting_route) left = std::min(left, std::chrono::milliseconds(2));
    zmq::poll(items, std::max(left, std::chrono::milliseconds(0)));
    if (items[1].revents & ZMQ_POLLIN) zap_->handle_pending();
    if (items[2].revents & ZMQ_POLLIN) read_monitor();
    if (items[0].revents & ZMQ_POLLIN) receive_all(got);
    for (size_t i = 0; i < dealers.size(); ++i)
      if (items[kFixed + i].revents & ZMQ_POLLIN) receive_dealer(*dealers[i].first, *dealers[i].second, got);
    if (!got.empty() || Clock::now() >= deadline) break;
  }
  expire_partials();
  std::erase_if(dial_backs_, [now = Clock::now()](const DialBackSocket& d) { return now >= d.closes; });
  counters_.zap_admitted = zap_->admitted();
  counters_.zap_denied = zap_->denied();
  return got;
}

void Transport::read_monitor() {
  zmq::message_t event;
  while (monitor_.recv(event, zmq::recv_flags::dontwait)) {
    // Each event is two frames: (uint16 event, uint32 value), then the endpoint.
    if (event.size() >= 2 && event.more()) {
      uint16_t code;
      std::memcpy(&code, event.data(), 2);
      if (code == ZMQ_EVENT_DISCONNECTED) ++counters_.disconnects;
    }
  }
}

namespace {
// Reads the rest of a multipart message; true if there was any.
bool drain_parts(zmq::socket_t& s, const zmq::message_t& first) {
  bool extra = false;
  for (bool more = first.more(); more;) {
    zmq::message_t part;
    (void)s.recv(part);
    extra = true;
    more = part.more();
  }
  return extra;
}
}  // namespace

void Transport::receive_all(std::vector<Incoming>& out) {
  size_t bytes = 0;
  for (size_t n = 0; n < kMaxFramesPerPoll && bytes < kMaxBytesPerPoll; ++n) {
    zmq::message_t routing_id, frame;
    if (!router_.recv(routing_id, zmq::recv_flags::dontwait)) return;
    if (!routing_id.more()) continue;  // cannot happen on a ROUTER
    (void)router_.recv(frame);
    bytes += frame.size();
    const bool multipart = drain_parts(router_, frame);
    const char* user_id = zmq_msg_gets(frame.handle(), "User-Id");
    const auto from = user_id ? g::peer_id_from_z85(user_id) : std::nullopt;
    if (!from) {
      ++counters_.unauthenticated;
      reject(nullptr, "unauthenticated", "frame without an authenticated key");
      continue;
    }
    // A routing id of ours names its key: the connection is that peer's route, if the key signed the frame.
    const std::string_view rid(static_cast<const char*>(routing_id.data()), routing_id.size());
    if (rid.size() == 2 + from->size() && rid[0] == 'm') {
      if (std::memcmp(rid.data() + 2, from->data(), from->size()) != 0) {
        g::PeerId claimed;
        std::memcpy(claimed.data(), rid.data() + 2, claimed.size());
        if (const auto it = routes_.find(claimed); it != routes_.end()) it->second = false;
        reject(&*from, "route_claim", "routing id names another peer's key");
        continue;
      }
      routes_[*from] = true;
    }
    const char* addr = zmq_msg_gets(frame.handle(), "Peer-Address");
    receive_frame(*from, frame, multipart, addr ? addr : "", out);
  }
}

void Transport::receive_dealer(const g::PeerId& from, zmq::socket_t& s, std::vector<Incoming>& out) {
  size_t bytes = 0;
  for (size_t n = 0; n < kMaxFramesPerPoll && bytes < kMaxBytesPerPoll; ++n) {
    zmq::message_t frame;
    if (!s.recv(frame, zmq::recv_flags::dontwait)) return;
    bytes += frame.size();
    const bool multipart = drain_parts(s, frame);
    receive_frame(from, frame, multipart, {}, out);  // from: the key the CURVE handshake checked
  }
}

void Transport::receive_frame(const g::PeerId& from, zmq::message_t& frame, bool multipart,
                              std::string observed, std::vector<Incoming>& out) {
  for (LinkCounters* c : {&counters_.total, &counters_.peers[from]}) c->bytes_in += frame.size();
  if (multipart) return reject(&from, "multipart", "multipart message");
  wire::Decoded<wire::Frame> r =
      wire::decode_frame({static_cast<const uint8_t*>(frame.data()), frame.size()});
  if (!r) return reject(&from, "malformed", r.error);
  if (auto* chunk = std::get_if<wire::PayloadChunk>(&*r.value)) {
    reassemble(from, *chunk, out);  // its bytes are still in `frame`
  } else {
    accept(from, std::move(std::get<g::Message>(*r.value)), std::move(observed), out);
  }
}

void Transport::accept(const g::PeerId& from, g::Message m, std::string observed,
                       std::vector<Incoming>& out) {
  const g::PeerInfo* self = nullptr;
  if (auto* h = std::get_if<g::Hello>(&m)) self = &h->self;
  if (auto* w = std::get_if<g::Welcome>(&m)) self = &w->self;
  if (self && self->id != from) {
    reject(&from, "spoofed", "self.id is not the sender's authenticated key");
    return;
  }
  ++counters_.total.messages_in, ++counters_.peers[from].messages_in;
  out.push_back({from, std::move(m), std::move(observed)});
}

// Chunks of one payload arrive in order on the sender's bulk connection; one
// payload per peer is in reassembly at a time.
void Transport::reassemble(const g::PeerId& from, const wire::PayloadChunk& p, std::vector<Incoming>& out) {
  if (p.chunk == 0) return start_payload(from, p, out);
  auto it = partial_.find(from);
  if (it == partial_.end() || it->second.link_epoch != p.link_epoch || it->second.seq != p.seq ||
      it->second.count != p.chunk_count || it->second.next != p.chunk) {
    reject(&from, "reassembly", "chunk " + std::to_string(p.chunk) + " out of order");
    drop_partial(from);
    return;
  }
  Reassembly& r = it->second;
  r.last_chunk = Clock::now();
  if (r.refused) {
    reject(&from, r.refused, "chunk " + std::to_string(p.chunk) + " of a refused payload");
  } else if (r.bytes.size() + p.bytes.size() > r.bound) {
    reject(&from, "reassembly", "chunk " + std::to_string(p.chunk) + " overruns the size chunk 0 announced");
    drop_partial(from);
    return;
  } else {
    r.bytes.insert(r.bytes.end(), p.bytes.begin(), p.bytes.end());
  }
  if (++r.next < r.count) return;
  if (!r.refused) deliver(from, g::Payload{r.link_epoch, r.seq, 0, 1, std::move(r.bytes)}, out);
  erase_partial(it);
}

void Transport::start_payload(const g::PeerId& from, const wire::PayloadChunk& first,
                              std::vector<Incoming>& out) {
  if (const auto it = partial_.find(from); it != partial_.end()) {
    if (!it->second.refused)
      reject(&from, "reassembly", "payload abandoned after " + std::to_string(it->second.next) + " chunks");
    erase_partial(it);
  }
  // Every chunk but the last has the first one's size: reserving the whole payload once spares the
  // receiving thread the copies of a growing buffer (a 256 MiB payload would stall it for ~100 ms).
  const uint64_t bound =
      std::min<uint64_t>(uint64_t(first.chunk_count) * first.bytes.size(), config_.max_payload_bytes);
  const char* refused = refusal(from, first, bound);
  if (first.chunk_count == 1) {
    if (!refused) deliver(from, wire::to_payload(first), out);
    return;
  }
  Reassembly r{first.link_epoch, first.seq, 1, first.chunk_count, 0, {}, Clock::now(), refused};
  if (!refused) {
    r.bound = size_t(bound);
    r.bytes.reserve(r.bound);
    advise_huge_pages(r.bytes.data(), r.bound);
    r.bytes.insert(r.bytes.end(), first.bytes.begin(), first.bytes.end());
    partial_bytes_ += r.bound;
  }
  partial_.emplace(from, std::move(r));
}

// Why the payload that `first` starts is not reassembled (counted by reject()), or nullptr. The
// smallest size its chunk count allows must fit max_payload_bytes: the last chunk may be short.
const char* Transport::refusal(const g::PeerId& from, const wire::PayloadChunk& first, uint64_t bound) {
  const std::string what =
      std::to_string(first.chunk_count) + " chunks of " + std::to_string(first.bytes.size()) + " bytes";
  if (payload_filter_ && !payload_filter_(from, first.link_epoch)) {
    reject(&from, "no_link", "payload on link epoch " + std::to_string(first.link_epoch) + ", not up");
    return "no_link";
  }
  const uint64_t smallest =
      first.chunk_count == 1 ? first.bytes.size() : uint64_t(first.chunk_count - 1) * first.bytes.size() + 1;
  if ((first.chunk_count > 1 && first.bytes.empty()) || smallest > config_.max_payload_bytes) {
    reject(&from, "oversize",
           what + ": empty, or beyond max_payload_bytes " + std::to_string(config_.max_payload_bytes));
    return "oversize";
  }
  if (first.chunk_count > 1 && partial_bytes_ + bound > config_.max_reassembly_bytes) {
    reject(&from, "memory",
           what + ": reassembly memory full (" + std::to_string(partial_bytes_) +
               " of max_reassembly_bytes " + std::to_string(config_.max_reassembly_bytes) + " in use)");
    return "memory";
  }
  return nullptr;
}

void Transport::deliver(const g::PeerId& from, g::Payload p, std::vector<Incoming>& out) {
  ++counters_.total.messages_in, ++counters_.peers[from].messages_in;
  out.push_back({from, std::move(p), {}});
}

// A sender that goes quiet mid-payload (stalled, gone, or hostile) must not pin its buffer.
void Transport::expire_partials() {
  const auto now = Clock::now();
  for (auto it = partial_.begin(); it != partial_.end();) {
    const auto next = std::next(it);
    const Reassembly& r = it->second;
    if (now - r.last_chunk >= config_.reassembly_timeout) {
      if (!r.refused)
        reject(
            &it->first, "timeout",
            "payload abandoned: no chunk for " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - r.last_chunk).count()) +
                " s after " + std::to_string(r.next) + " of " + std::to_string(r.count) + " chunks");
      erase_partial(it);
    }
    it = next;
  }
}

void Transport::drop_partial(const g::PeerId& from) {
  if (const auto it = partial_.find(from); it != partial_.end()) erase_partial(it);
}

// Freed on the reaper's thread: unmapping a large buffer would stall this one.
void Transport::erase_partial(std::map<g::PeerId, Reassembly>::iterator it) {
  partial_bytes_ -= it->second.bound;
  reaper_.release(std::move(it->second.bytes));
  partial_.erase(it);
}

void Transport::reject(const g::PeerId* from, const std::string& reason, const std::string& detail) {
  ++counters_.total.rejected[reason];
  if (from) ++counters_.peers[*from].rejected[reason];
  counters_.last_reject = (from ? g::short_name(*from) : std::string("?")) + ": " + detail;
}

void Transport::forget(const g::PeerId& peer) {
  out_.erase(peer);
  routes_.erase(peer);
  drop_partial(peer);
}

}  // namespace murmur::net

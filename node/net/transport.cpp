#include "node/net/transport.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <stdexcept>

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

struct Transport::Outbound {
  std::string addr;
  zmq::socket_t control, bulk;  // bulk connects on the first payload
  std::deque<zmq::message_t> control_queue;
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

zmq::socket_t Transport::connect_dealer(const g::PeerInfo& to, int sndhwm) {
  zmq::socket_t s(ctx_, zmq::socket_type::dealer);
  configure_curve_client(s, config_.keys, to.id);
  s.set(zmq::sockopt::linger, config_.linger_ms);
  s.set(zmq::sockopt::sndhwm, sndhwm);
  s.set(zmq::sockopt::rcvhwm, 1);  // nothing comes back on a DEALER
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
  if (it != out_.end() && it->second->addr != to.addr) {  // the peer moved or restarted elsewhere
    out_.erase(it);
    it = out_.end();
  }
  if (it == out_.end()) {
    auto o = std::make_unique<Outbound>();
    o->addr = to.addr;
    o->control = connect_dealer(to, kControlSndHwm);
    it = out_.emplace(to.id, std::move(o)).first;
  }
  return *it->second;
}

bool Transport::try_send(zmq::socket_t& s, const g::PeerId& to, zmq::message_t& frame) {
  const size_t n = frame.size();
  if (!s.send(frame, zmq::send_flags::dontwait)) return false;
  for (LinkCounters* c : {&counters_.total, &counters_.peers[to]}) c->bytes_out += n;
  return true;
}

void Transport::send(const g::PeerInfo& to, const g::Message& m) {
  Outbound& o = outbound(to);
  const std::vector<uint8_t> bytes = wire::encode(m);
  zmq::message_t frame(bytes.data(), bytes.size());
  if (o.control_queue.empty() && try_send(o.control, to.id, frame)) {
    ++counters_.total.messages_out, ++counters_.peers[to.id].messages_out;
  } else if (o.control_queue.size() < config_.max_queued_control) {
    o.control_queue.push_back(std::move(frame));
  } else {
    reject(&to.id, "queue_full", "control queue full, message not sent");
  }
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
  if (!o.bulk) o.bulk = connect_dealer(to, kBulkSndHwm);
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
  while (!o.control_queue.empty() && try_send(o.control, to, o.control_queue.front())) {
    o.control_queue.pop_front();
    ++counters_.total.messages_out, ++counters_.peers[to].messages_out;
  }
  // Build a chunk's frame only when the socket will take it: poll() pumps on every wake-up, and a
  // full socket would otherwise cost a discarded copy of a chunk each time. The frame is written in
  // place into the message libzmq sends, so each payload byte is copied once on this side.
  while (!o.bulk_queue.empty() && (o.bulk.get(zmq::sockopt::events) & ZMQ_POLLOUT)) {
    Outbound::Pending& p = o.bulk_queue.front();
    const size_t begin = size_t(p.next_chunk) * config_.chunk_bytes;
    const size_t n = std::min(p.bytes.size() - begin, config_.chunk_bytes);
    const std::vector<uint8_t> header =
        wire::payload_chunk_header(p.link_epoch, p.seq, p.next_chunk, p.chunk_count, n);
    zmq::message_t frame(header.size() + n);
    auto* dst = static_cast<uint8_t*>(frame.data());
    std::memcpy(dst, header.data(), header.size());
    if (n != 0) std::memcpy(dst + header.size(), p.bytes.data() + begin, n);
    if (!try_send(o.bulk, to, frame)) return;
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
    for (auto& [id, o] : out_) pump(id, *o);
    std::vector<zmq::pollitem_t> items = {{router_.handle(), 0, ZMQ_POLLIN, 0},
                                          {zap_->socket().handle(), 0, ZMQ_POLLIN, 0},
                                          {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
    for (auto& [id, o] : out_) {
      if (!o->control_queue.empty()) items.push_back({o->control.handle(), 0, ZMQ_POLLOUT, 0});
      if (!o->bulk_queue.empty()) items.push_back({o->bulk.handle(), 0, ZMQ_POLLOUT, 0});
    }
    // Rounded up: zmq::poll counts whole milliseconds, and the sub-millisecond rest of every
    // timeout, rounded down to 0, made this loop spin until the deadline.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    zmq::poll(items, std::max(left, std::chrono::milliseconds(0)));
    if (items[1].revents & ZMQ_POLLIN) zap_->handle_pending();
    if (items[2].revents & ZMQ_POLLIN) read_monitor();
    if (items[0].revents & ZMQ_POLLIN) receive_all(got);
    if (!got.empty() || Clock::now() >= deadline) break;
  }
  expire_partials();
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

void Transport::receive_all(std::vector<Incoming>& out) {
  size_t bytes = 0;
  for (size_t n = 0; n < kMaxFramesPerPoll && bytes < kMaxBytesPerPoll; ++n) {
    zmq::message_t routing_id, frame;
    if (!router_.recv(routing_id, zmq::recv_flags::dontwait)) return;
    if (!routing_id.more()) continue;  // cannot happen on a ROUTER
    (void)router_.recv(frame);
    bytes += frame.size();
    bool extra = false;
    while (frame.more()) {  // a multipart message: drain it, part by part
      zmq::message_t part;
      (void)router_.recv(part);
      extra = true;
      if (!part.more()) break;
    }
    const char* user_id = zmq_msg_gets(frame.handle(), "User-Id");
    const auto from = user_id ? g::peer_id_from_z85(user_id) : std::nullopt;
    if (!from) {
      ++counters_.unauthenticated;
      reject(nullptr, "unauthenticated", "frame without an authenticated key");
      continue;
    }
    for (LinkCounters* c : {&counters_.total, &counters_.peers[*from]}) c->bytes_in += frame.size();
    if (extra) {
      reject(&*from, "multipart", "multipart message");
      continue;
    }
    wire::Decoded<wire::Frame> r =
        wire::decode_frame({static_cast<const uint8_t*>(frame.data()), frame.size()});
    if (!r) {
      reject(&*from, "malformed", r.error);
      continue;
    }
    if (auto* chunk = std::get_if<wire::PayloadChunk>(&*r.value)) {
      reassemble(*from, *chunk, out);  // its bytes are still in `frame`
    } else {
      accept(*from, std::move(std::get<g::Message>(*r.value)), out);
    }
  }
}

void Transport::accept(const g::PeerId& from, g::Message m, std::vector<Incoming>& out) {
  const g::PeerInfo* self = nullptr;
  if (auto* h = std::get_if<g::Hello>(&m)) self = &h->self;
  if (auto* w = std::get_if<g::Welcome>(&m)) self = &w->self;
  if (self && self->id != from) {
    reject(&from, "spoofed", "self.id is not the sender's authenticated key");
    return;
  }
  ++counters_.total.messages_in, ++counters_.peers[from].messages_in;
  out.push_back({from, std::move(m)});
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
  out.push_back({from, std::move(p)});
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
  drop_partial(peer);
}

}  // namespace murmur::net

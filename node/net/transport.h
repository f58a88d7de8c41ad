// The encrypted transport: CurveZMQ sockets carrying gossip/wire.h frames.
//
// One ROUTER (CURVE server, ZAP enforced, see node/net/zap.h) receives from every
// peer; per destination peer we connect two DEALERs (CURVE clients), one for
// control messages and one for bulk payload chunks, so a probe never queues
// behind a model in the same TCP stream. Every received message is attributed
// to the sender's authenticated public key (the ZAP handler's User-Id).
//
// Addresses: PeerInfo.addr is "tcp://HOST:PORT" and the peer's public key is
// PeerInfo.id. A join address, typed by a person, carries the key as well
// ("KEY@HOST:PORT"), because a CURVE client cannot connect without it.
//
// Outbound-only peers (PeerInfo.addr empty: behind NAT, nobody can dial them) are
// answered over the connections they opened: our DEALERs name themselves by a
// routing id made of our key (route_id), so the ROUTER on the other side can
// address them, and every DEALER also receives. A route is used only while the
// latest frame that came on it was signed by the key it names (docs/protocol.md,
// "Routes").
//
// Threading: a Transport is used by ONE thread (its sockets and the ZAP handler
// are not thread-safe). That thread must call poll() regularly: it answers ZAP
// requests (others' handshakes with us wait for it) and paces the bulk queues.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "gossip/messages.h"
#include "gossip/wire.h"
#include "node/net/keys.h"
#include "node/net/large_buffers.h"
#include "node/net/zap.h"

namespace murmur::net {

class MetricsRegistry;

struct TransportConfig {
  Keys keys;
  std::string listen = "tcp://127.0.0.1:0";  // port 0: the system picks (see endpoint())
  AdmissionPolicy admission;
  size_t chunk_bytes = 512u << 10;  // payload chunk size, at most gossip::kMaxChunkBytes
  // Reassembly bounds. A sender has one payload in reassembly at a time, so max_payload_bytes
  // (largest payload sent or reassembled) is also what one sender can hold; a peer sizes it from
  // its model (a full fp32 snapshot plus overhead).
  size_t max_payload_bytes = 1u << 30;
  size_t max_reassembly_bytes = 2u << 30;  // all senders' partial payloads together
  // A partial payload with no new chunk for this long is dropped. The same as the heartbeat
  // timeout: a chunk slower than that loses its connection anyway.
  std::chrono::milliseconds reassembly_timeout{120'000};
  size_t max_queued_payloads = 4;    // per peer, waiting to be sent; send_payload refuses more
  size_t max_queued_control = 1000;  // per peer, when the socket's queue is full
  // Destination address -> address actually dialled (the netem relays).
  std::map<std::string, std::string> dial_map;
  // ZMTP heartbeats only detect dead TCP connections; liveness is SWIM's job. The
  // timeout must exceed the slowest chunk's transfer time (docs/stack.md: libzmq #2709):
  // 1 MiB at 100 kbit/s takes 84 s.
  int heartbeat_ivl_ms = 10'000, heartbeat_timeout_ms = 120'000;
  int linger_ms = 1'000;  // how long closing waits for queued messages (Bye)
  // Open the bulk connection with the control one, not at the first payload: a peer that others cannot
  // dial needs both open before they can send it payloads (over its bulk route).
  bool eager_bulk = false;
  // How long a dial-back connection (dial_back) lives: its message goes out or is dropped by then.
  std::chrono::milliseconds dial_back_lifetime{10'000};
};

struct Incoming {
  gossip::PeerId from{};  // authenticated
  gossip::Message msg;    // a Payload arrives reassembled: chunk 0 of chunk_count 1
  std::string observed;   // the sender's IP as the connection shows it, for frames on our ROUTER
};

struct LinkCounters {
  uint64_t bytes_in = 0, bytes_out = 0;        // frame bytes
  uint64_t messages_in = 0, messages_out = 0;  // control messages and whole payloads
  // Dropped frames by reason: malformed (undecodable), spoofed (Hello/Welcome
  // self.id is not the sender's key), multipart, unauthenticated, reassembly (chunk
  // out of order or a payload abandoned half-way), oversize (beyond max_payload_bytes),
  // memory (max_reassembly_bytes in use), no_link (the payload filter refused it),
  // timeout (a partial payload whose sender went quiet), queue_full (outgoing control
  // or payload refused), route_claim (a frame whose routing id names another key). Every chunk of a refused
  // payload counts under its reason.
  std::map<std::string, uint64_t> rejected;
};

struct TransportCounters {
  LinkCounters total;
  std::map<gossip::PeerId, LinkCounters> peers;
  uint64_t zap_admitted = 0, zap_denied = 0;
  // Connections to our ROUTER that libzmq closed: departures, and frames over
  // ZMQ_MAXMSGSIZE (libzmq drops the connection without surfacing the frame).
  uint64_t disconnects = 0;
  uint64_t unauthenticated = 0;  // frames without a User-Id (cannot happen while ZAP is enforced)
  uint64_t dial_backs = 0, dial_backs_dropped = 0;  // dial_back connections opened, refused (too many)
  std::string last_reject;  // "<peer>: <reason>" of the latest dropped frame, for logs
};

// Parses "KEY@HOST:PORT" (KEY: a 40-character Z85 public key as keygen prints it)
// into {id, "tcp://HOST:PORT", 0}. Throws std::invalid_argument saying what is wrong.
gossip::PeerInfo parse_join_address(const std::string& text);

// Largest frame a ROUTER accepts (ZMQ_MAXMSGSIZE): one full chunk plus envelope.
inline constexpr size_t kMaxFrameBytes = gossip::kMaxChunkBytes + 128;

// The routing id our DEALERs of `kind` ('c' control, 'b' bulk) carry: 'm', kind, then the 32-byte key
// (libzmq reserves ids that start with a zero byte).
std::string route_id(const gossip::PeerId& id, char kind);

// Mirrors the counters into `m`: murmur_transport_dropped_total{peer,reason} (peers by
// m.peer_label, the rest summed as "unknown"), murmur_transport_disconnects_total,
// murmur_zap_admitted_total and murmur_zap_denied_total.
void export_counters(const TransportCounters& c, MetricsRegistry& m);

// Whether a payload from `from` on `link_epoch` may be reassembled; asked at its first chunk.
using PayloadFilter = std::function<bool(const gossip::PeerId& from, uint64_t link_epoch)>;

class Transport {
 public:
  // Binds the ROUTER. Throws with the address named (bad address, port in use) or
  // on an invalid config.
  explicit Transport(TransportConfig config);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  std::string endpoint() const;  // the bound endpoint, "tcp://127.0.0.1:PORT"
  const gossip::PeerId& id() const { return config_.keys.id; }

  // A control message. It goes ahead of any payload chunks queued for the peer.
  // Connects on first use (and reconnects if `to.addr` changed).
  void send(const gossip::PeerInfo& to, const gossip::Message& m);
  // The same for a join address "KEY@HOST:PORT" (throws if malformed).
  void send_to_addr(const std::string& join_address, const gossip::Message& m);
  // `m` on a connection of its own to `to.addr` (a dial-back), closed after dial_back_lifetime; never the
  // peer's usual connection, so its arrival proves the address. At most kMaxDialBacks open at once.
  void dial_back(const gossip::PeerInfo& to, const gossip::Message& m);
  static constexpr size_t kMaxDialBacks = 16;
  // Relays (docs/relay.md). A callee connects its ROUTER to the relay's port (once per address): the
  // caller's DEALER reaches it through that connection. A caller sends to a peer at a relay's port over
  // one connection only, payloads included (the relay pairs one connection per side).
  void connect_router(const std::string& relay_addr);
  void single_connection(const std::string& relay_addr) { single_.insert(relay_addr); }
  // Queues a payload, sent in chunks of chunk_bytes as the link drains (paced by
  // poll()). False when max_queued_payloads are already waiting for this peer.
  // Throws std::invalid_argument beyond max_payload_bytes.
  bool send_payload(const gossip::PeerInfo& to, uint64_t link_epoch, uint64_t seq,
                    std::vector<uint8_t> bytes);
  // Payloads (and chunks) still queued for `to`.
  size_t queued_payloads(const gossip::PeerId& to) const;

  // Waits up to `timeout` for input while sending queued chunks; returns as soon
  // as at least one message arrived (or on timeout, possibly empty). Invalid
  // frames are dropped and counted, never returned.
  std::vector<Incoming> poll(std::chrono::milliseconds timeout);

  // Closes the sockets to a departed peer and drops what was queued for it or
  // half-received from it.
  void forget(const gossip::PeerId& peer);

  // Payloads it refuses are dropped unread (counted as no_link): the caller knows which
  // links are up. Unset: every payload is reassembled. Called from poll().
  void set_payload_filter(PayloadFilter filter) { payload_filter_ = std::move(filter); }

  const TransportCounters& counters() const { return counters_; }
  size_t reassembly_bytes() const { return partial_bytes_; }  // reserved for partial payloads

 private:
  struct Outbound;
  struct Reassembly {
    uint64_t link_epoch = 0, seq = 0;
    uint32_t next = 0, count = 0;
    // count × the first chunk's size, at most max_payload_bytes: reserved up front, counted in
    // partial_bytes_ (0 for a refused payload).
    size_t bound = 0;
    std::vector<uint8_t> bytes;
    std::chrono::steady_clock::time_point last_chunk;  // the timeout runs from the latest chunk
    const char* refused = nullptr;  // why: the rest of its chunks are dropped unread, counted so
  };

  enum class Sent { yes, later };  // a frame handed to a connection went, or waits for room or a route
  struct DialBackSocket {
    zmq::socket_t socket;
    std::chrono::steady_clock::time_point closes;
  };

  Outbound& outbound(const gossip::PeerInfo& to);
  zmq::socket_t connect_dealer(const gossip::PeerInfo& to, int sndhwm, std::string routing_id);
  // Sends on `o`'s control (bulk: its bulk) connection: its DEALER, or its route through our ROUTER. Moves
  // the frame when sent; `later` when the connection cannot take it now or the route is not connected.
  Sent try_send(Outbound& o, bool bulk, const gossip::PeerId& to, zmq::message_t& frame);
  Sent redial(Outbound& o, bool bulk, const gossip::PeerId& to, zmq::message_t& frame);
  void dial(Outbound& o, const gossip::PeerId& to, const std::string& addr);  // its DEALERs to addr
  void pump(const gossip::PeerId& to, Outbound& o);
  void receive_all(std::vector<Incoming>& out);
  void receive_dealer(const gossip::PeerId& from, zmq::socket_t& s, std::vector<Incoming>& out);
  // One frame from an authenticated sender, on any socket.
  void receive_frame(const gossip::PeerId& from, zmq::message_t& frame, bool multipart, std::string observed,
                     std::vector<Incoming>& out);
  void accept(const gossip::PeerId& from, gossip::Message m, std::string observed,
              std::vector<Incoming>& out);
  void reassemble(const gossip::PeerId& from, const gossip::wire::PayloadChunk& p,
                  std::vector<Incoming>& out);
  void start_payload(const gossip::PeerId& from, const gossip::wire::PayloadChunk& first,
                     std::vector<Incoming>& out);
  const char* refusal(const gossip::PeerId& from, const gossip::wire::PayloadChunk& first, uint64_t bound);
  void deliver(const gossip::PeerId& from, gossip::Payload p, std::vector<Incoming>& out);
  void expire_partials();
  void drop_partial(const gossip::PeerId& from);
  void erase_partial(std::map<gossip::PeerId, Reassembly>::iterator it);
  void reject(const gossip::PeerId* from, const std::string& reason, const std::string& detail);
  void read_monitor();

  TransportConfig config_;
  BufferReaper reaper_;  // frees sent payloads
  zmq::context_t ctx_;
  std::unique_ptr<ZapHandler> zap_;  // before router_: the handler must exist when it binds
  zmq::socket_t router_;
  zmq::socket_t monitor_;
  std::map<gossip::PeerId, std::unique_ptr<Outbound>> out_;
  // Peers whose route (their DEALERs' connections to our ROUTER) we may use: the latest frame on it was
  // theirs. A frame on it signed by another key withdraws it until its owner speaks again.
  std::map<gossip::PeerId, bool> routes_;
  std::vector<DialBackSocket> dial_backs_;
  std::set<std::string> router_connects_, single_;  // relay ports: connected to, dialled with one socket
  std::map<gossip::PeerId, Reassembly> partial_;
  size_t partial_bytes_ = 0;
  PayloadFilter payload_filter_;
  TransportCounters counters_;
};

}  // namespace murmur::net

// The relay a reachable peer offers (`--relay`) so that two peers that cannot be dialled can still be
// neighbours (docs/relay.md). Per session it listens on two TCP ports: the unreachable peer B dials the
// callee port with its ROUTER, the peer A that wants B as a neighbour dials the caller port with a DEALER
// (CURVE client of B's key). The service pairs one connection of each side and splices the two byte
// streams both ways, unmodified and unparsed: the ZMTP/CURVE session runs end to end between A and B, so
// the relay sees ciphertext, sizes and timing only, and can neither read nor forge a message.
//
// Pairing: at most one pair per session. A connection that arrives while its side is paired (or has a
// connection waiting already) waits, unread; a newer waiting connection replaces an older one (which is
// closed), because ZeroMQ's reconnect makes the newest one the live one. When either end of a pair closes
// or fails, the other is closed too, and the waiting connections (or the next ones ZeroMQ reconnects)
// form the next pair. Bytes sent before the pair forms stay in the kernel's socket buffer: bounded, and
// TCP back-pressure stops the sender.
//
// Bandwidth: one cap shared by every byte the relay forwards, both directions of all sessions (what the
// relaying peer spends of its own link). Each direction of each pair reads at most one chunk ahead and
// queues for tokens in arrival order, so concurrent flows are served round-robin: a new flow gets its
// share at once, however long the others have been sending.
//
// Threading: the service runs its own io_context thread; every public method is thread-safe and may be
// called from any thread but that one (it throws std::logic_error there: it would deadlock).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace murmur::net {

struct RelayServiceConfig {
  std::string bind_host = "0.0.0.0";  // where the session ports listen
  double bandwidth_bps = 0;           // cap on all relayed bytes together, bit/s; 0 = unlimited
  size_t max_sessions = 64;
  // A session with no pair for this long (since it opened or its last pair ended) is closed, its ports
  // with it. 0 = never.
  std::chrono::milliseconds idle_timeout{120'000};
};

using RelaySessionId = uint64_t;

struct RelaySessionPorts {
  RelaySessionId id = 0;
  uint16_t caller_port = 0;  // peer A's DEALER dials this
  uint16_t callee_port = 0;  // the unreachable peer B's ROUTER dials this
  bool created = false;      // false: open() found a session with this key already
};

struct RelaySessionStats {
  RelaySessionId id = 0;
  std::string key;
  uint16_t caller_port = 0, callee_port = 0;
  uint64_t caller_to_callee = 0, callee_to_caller = 0;  // bytes forwarded
  uint64_t pairs = 0;                                   // pairs formed so far
  bool paired = false;
  bool caller_waiting = false, callee_waiting = false;  // an accepted connection waits for a pair
};

struct RelayStats {
  std::vector<RelaySessionStats> sessions;  // the open ones, by id
  // Over the service's life, closed sessions included.
  uint64_t caller_to_callee = 0, callee_to_caller = 0;
  uint64_t pairs = 0, sessions_opened = 0, sessions_expired = 0;
  uint64_t sessions_refused = 0;  // open() beyond max_sessions
};

// open() when max_sessions are open: the caller should refuse to relay.
class RelaySessionLimit : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class MetricsRegistry;

// Mirrors the totals into `m`: murmur_relay_bytes_total{direction="caller_to_callee"|"callee_to_caller"},
// murmur_relay_pairs_total and murmur_relay_sessions_total{event="opened"|"expired"|"refused"}.
void export_relay_stats(const RelayStats& s, MetricsRegistry& m);

class RelayService {
 public:
  // Throws std::invalid_argument on a bad config (negative cap, max_sessions 0, unresolvable host).
  explicit RelayService(RelayServiceConfig config);
  ~RelayService();  // closes every session and joins the thread
  RelayService(const RelayService&) = delete;
  RelayService& operator=(const RelayService&) = delete;

  // Opens a session and binds its two ports (throws std::runtime_error naming the address if it cannot),
  // or returns the open session with this key (say, the two peers' ids), so a repeated request is
  // answered with the same ports. Throws RelaySessionLimit when max_sessions are open.
  RelaySessionPorts open(const std::string& key);
  // Closes the session's listeners and connections. False if it is not open (closed or expired).
  bool close(RelaySessionId id);
  RelayStats stats();
  const RelayServiceConfig& config() const { return config_; }

  struct Impl;

 private:
  RelayServiceConfig config_;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace murmur::net

// A peer's network thread: drives the membership state machine over the
// encrypted transport, hands link events and training messages to the
// training thread (PeerMailbox) and sends what it queued, logs membership
// events, and prints a status line.
//
// Threading: run() owns the transport and the membership; call it on one
// thread. Everything else talks to it through the mailbox.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "gossip/membership.h"
#include "node/net/metrics.h"
#include "node/net/relay_service.h"
#include "node/net/transport.h"
#include "node/peer/mailbox.h"
#include "node/run/jsonl_log.h"

namespace murmur::peer {

struct NetLoopOptions {
  std::vector<std::string> join;  // KEY@HOST:PORT
  gossip::MembershipConfig membership;
  double status_every_s = 5.0;  // 0 = no status line
  bool quiet = false;
  bool ring_payloads = false;               // allreduce/diloco: payloads on kRingEpoch from live members
  net::MetricsRegistry* metrics = nullptr;  // the transport's counters are mirrored here
  // --relay: sessions on relay_bind (the listen host), offered at relay_host (the advertised host).
  bool relay = false;
  double relay_bandwidth_bps = 0;
  std::string relay_bind, relay_host;
};

class NetLoop {
 public:
  // `self` carries the advertised address and this start's incarnation.
  NetLoop(net::Transport& transport, gossip::PeerInfo self, NetLoopOptions opt, PeerMailbox& mailbox,
          run::JsonlLog* log, uint64_t seed);
  ~NetLoop();
  NetLoop(const NetLoop&) = delete;
  NetLoop& operator=(const NetLoop&) = delete;
  // Runs until mailbox.stop(); then leaves the swarm gracefully (Bye, LinkClose)
  // and flushes what is queued for a short while.
  void run();

 private:
  // The transport's payload filter: only links that are up (and the ring) are reassembled.
  bool accepts_payload(const gossip::PeerId& from, uint64_t epoch);
  void handle(net::Incoming&& in, gossip::Millis now);
  void send_payloads();
  void carry_out(gossip::Millis now);
  void report(const gossip::Reachability& r);  // on stdout and in the log
  void open_relay(const gossip::OpenRelay& r);
  bool payloads_queued() const;  // this peer still has payloads to send to a neighbour
  void publish(double elapsed_s);
  gossip::Millis now_ms() const;

  net::Transport& transport_;
  gossip::Membership membership_;
  NetLoopOptions opt_;
  PeerMailbox& mailbox_;
  run::JsonlLog* log_;
  std::chrono::steady_clock::time_point t0_;
  // Per peer, payloads the transport's queue cannot take yet (it holds a few per
  // peer, so a slow link does not hold up the others).
  std::map<gossip::PeerId, std::deque<OutPayload>> pending_;
  uint64_t payload_bytes_sent_ = 0;
  bool exchanged_ = false;  // a first payload arrived (logged once)
  std::unique_ptr<net::RelayService> relay_;
};

}  // namespace murmur::peer

// CurveZMQ authentication: the ZAP handler (RFC 27) that decides which client
// keys a server socket admits, and the socket settings that make it mandatory.
//
// Without a ZAP handler a CURVE server admits every key (docs/stack.md: libzmq's
// "Stonehouse" behaviour). configure_curve_server therefore sets a ZAP domain and
// ZMQ_ZAP_ENFORCE_DOMAIN, so the server refuses every client while no handler
// answers: it fails closed.
#pragma once

#include <cstdint>
#include <set>
#include <zmq.hpp>

#include "gossip/messages.h"
#include "node/net/keys.h"

namespace murmur::net {

inline constexpr const char* kZapDomain = "murmur";

// Who may connect: the keys of an allow-list, or anyone (explicit open mode).
struct AdmissionPolicy {
  bool open = false;
  std::set<gossip::PeerId> allowed;
  bool admits(const gossip::PeerId& key) const { return open || allowed.count(key) != 0; }
};

// A CURVE server socket (ROUTER) with our keys and the ZAP domain enforced.
void configure_curve_server(zmq::socket_t& s, const Keys& keys);
// A CURVE client socket (DEALER) that will only talk to the server holding `server`'s secret key.
void configure_curve_client(zmq::socket_t& s, const Keys& keys, const gossip::PeerId& server);

// The ZAP handler: a REP socket on inproc://zeromq.zap.01 of `ctx`. Create it
// before any server socket of that context binds. Threading: one owner thread,
// which must call handle_pending() whenever socket() is readable, or CURVE
// handshakes stall (Transport::poll does this).
class ZapHandler {
 public:
  ZapHandler(zmq::context_t& ctx, AdmissionPolicy policy);
  zmq::socket_t& socket() { return sock_; }
  // Answers every queued request without blocking. An admitted client's reply
  // carries its Z85 public key as User-Id: the "User-Id" property of every
  // message it sends.
  void handle_pending();
  uint64_t admitted() const { return admitted_; }
  uint64_t denied() const { return denied_; }

 private:
  zmq::socket_t sock_;
  AdmissionPolicy policy_;
  uint64_t admitted_ = 0, denied_ = 0;
};

}  // namespace murmur::net

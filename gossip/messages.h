// The messages peers exchange, as plain values. This header is the contract
// between the sans-IO state machines (gossip/: membership, the training
// algorithm), the wire codec (gossip/wire.h: msgpack, hostile decoding) and
// the transport (node/net/transport.h). Nothing here does I/O or serialisation.
//
// A message's sender is not a field: the transport authenticates it (its CURVE
// public key, checked by the ZAP handler) and hands it over with the message.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "gossip/run_identity.h"

namespace murmur::gossip {

// 2: Delta.state_digest; 3: the run's identity in Hello/Welcome (and Refusal), its digest in Shuffle, Ping,
// Ack and LinkRequest; 4: reachability (Hello.dial_back, Welcome.observed, Reachable) and relays
// (RelayRequest, RelayOffer), RunQuery/RunInfo.
inline constexpr uint32_t kProtocolVersion = 4;

// BLAKE2b-256 of a public copy's fp32 bytes (a snapshot by digest).
inline constexpr size_t kStateDigestBytes = 32;

// A peer's identity: its CurveZMQ public key (32 bytes).
using PeerId = std::array<uint8_t, 32>;

// Bounds every decoder enforces (gossip/wire.cpp) and every sender respects.
inline constexpr size_t kMaxAddrLen = 256;          // "tcp://host:port"
inline constexpr size_t kMaxPeersPerMessage = 64;   // samples, updates
inline constexpr size_t kMaxChunkBytes = 1u << 20;  // payload and state chunks

// What one peer knows of another. `addr` is where the peer listens, as it
// advertises itself; empty for a peer nobody can dial (behind NAT or a firewall:
// "outbound-only"), which is reached only over the connections it opened itself.
// `incarnation` only grows, and the peer itself bumps it to refute a suspicion, to
// announce a restart or a new address (SWIM).
struct PeerInfo {
  PeerId id{};
  std::string addr;
  uint64_t incarnation = 0;
  friend bool operator==(const PeerInfo&, const PeerInfo&) = default;
};

enum class PeerState : uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };

// A membership fact, disseminated by piggybacking on probes (SWIM).
struct MemberUpdate {
  PeerInfo peer;
  PeerState state = PeerState::alive;
  friend bool operator==(const MemberUpdate&, const MemberUpdate&) = default;
};

// -- joining and peer sampling ------------------------------------------------
// A newcomer sends Hello to any known address; the receiver answers Welcome with
// a random sample of its view and spreads the newcomer as alive, or, when the
// newcomer's run differs, Refusal. `run` is the sender's RunIdentity; the messages
// below that introduce a peer or open a link carry its digest, `run_digest`
// (run_digest(run)), and a receiver of another run drops them.
// A joiner that does not know whether others can dial it advertises no address
// (self.addr empty) and names the address it listens on in `dial_back`: the
// receiver dials it there on a fresh connection and sends Reachable over it, and
// answers the Hello with the address it saw the joiner's connection come from in
// Welcome.observed (the idea of libp2p's AutoNAT and identify).
struct Hello {
  PeerInfo self;
  RunIdentity run{};
  std::string dial_back{};
  friend bool operator==(const Hello&, const Hello&) = default;
};
struct Welcome {
  PeerInfo self;
  std::vector<PeerInfo> sample;
  RunIdentity run{};
  std::string observed{};  // the joiner's address as the welcomer saw it (IP only; empty if unknown)
  friend bool operator==(const Welcome&, const Welcome&) = default;
};
// Sent on a connection dialled to a joiner's Hello.dial_back: arriving at all proves the address works.
struct Reachable {
  std::string addr;
  friend bool operator==(const Reachable&, const Reachable&) = default;
};
// Cyclon-style shuffle: exchange random samples of the partial views.
struct Shuffle {
  std::vector<PeerInfo> sample;
  bool reply = false;
  uint64_t run_digest = 0;
  friend bool operator==(const Shuffle&, const Shuffle&) = default;
};

// -- failure detection (SWIM) ---------------------------------------------------
struct Ping {
  uint64_t seq = 0;
  std::vector<MemberUpdate> updates;
  uint64_t run_digest = 0;
  friend bool operator==(const Ping&, const Ping&) = default;
};
// Ack answers a Ping (or, relayed, a PingReq): `target` is who was probed.
struct Ack {
  uint64_t seq = 0;
  PeerId target{};
  std::vector<MemberUpdate> updates;
  uint64_t run_digest = 0;
  friend bool operator==(const Ack&, const Ack&) = default;
};
// Asks the receiver to probe `target` on the sender's behalf (indirect probe).
struct PingReq {
  uint64_t seq = 0;
  PeerInfo target;
  friend bool operator==(const PingReq&, const PingReq&) = default;
};

// -- symmetric neighbour links --------------------------------------------------
// A link exists when both sides agreed: LinkRequest -> LinkAccept. `degree` is the
// sender's current number of links (for Metropolis-Hastings weights).
// Only a LinkRequest carries the run's digest: an acceptor of another run drops it, so it never answers.
struct LinkRequest {
  uint64_t link_epoch = 0;  // distinguishes successive links between the same pair
  uint32_t degree = 0;
  uint64_t run_digest = 0;
  friend bool operator==(const LinkRequest&, const LinkRequest&) = default;
};
struct LinkAccept {
  uint64_t link_epoch = 0;
  uint32_t degree = 0;
  friend bool operator==(const LinkAccept&, const LinkAccept&) = default;
};
struct LinkReject {
  uint64_t link_epoch = 0;
  friend bool operator==(const LinkReject&, const LinkReject&) = default;
};
struct LinkClose {
  uint64_t link_epoch = 0;
  friend bool operator==(const LinkClose&, const LinkClose&) = default;
};

// -- training traffic -------------------------------------------------------------
// An opaque update for the training layer on an established link. `seq` counts per
// link epoch from 0 without gaps; a payload larger than kMaxChunkBytes travels as
// chunks [chunk, chunk_count) of the same seq, reassembled by the transport.
struct Payload {
  uint64_t link_epoch = 0;
  uint64_t seq = 0;
  uint32_t chunk = 0;
  uint32_t chunk_count = 1;
  std::vector<uint8_t> bytes;
  friend bool operator==(const Payload&, const Payload&) = default;
};

// Bulk state transfer (a joiner fetches a snapshot): resumable by offset, the
// whole blob verified against `sha256` (of the complete state) at the end.
struct StateRequest {
  uint64_t transfer_id = 0;
  uint64_t offset = 0;
  friend bool operator==(const StateRequest&, const StateRequest&) = default;
};
struct StateChunk {
  uint64_t transfer_id = 0;
  uint64_t total_size = 0;
  uint64_t offset = 0;
  std::array<uint8_t, 32> sha256{};
  std::vector<uint8_t> bytes;
  friend bool operator==(const StateChunk&, const StateChunk&) = default;
};

// Graceful leave.
struct Bye {
  uint64_t incarnation = 0;
  friend bool operator==(const Bye&, const Bye&) = default;
};

// The answer to a Hello of another run: the refuser's own identity, so the joiner can name every
// setting that differs. The joiner is not admitted.
struct Refusal {
  RunIdentity run{};
  friend bool operator==(const Refusal&, const Refusal&) = default;
};

// -- relays (docs/relay.md) ------------------------------------------------------
// An outbound-only peer asks a dialable peer that relays (--relay) to make it a neighbour of `target`,
// another peer nobody can dial. A peer that does not relay ignores it.
struct RelayRequest {
  PeerId target{};
  friend bool operator==(const RelayRequest&, const RelayRequest&) = default;
};
// The relay's answer, to both ends: `peer` is the other end, `addr` the relay's port for the receiver.
// The callee (`target`) connects its ROUTER there; the caller dials `addr` as `peer`'s address. The
// CURVE session runs end to end: the relay forwards ciphertext.
struct RelayOffer {
  PeerId peer{};
  std::string addr;
  bool callee = false;
  friend bool operator==(const RelayOffer&, const RelayOffer&) = default;
};

// A peer about to join asks for the run's settings, to take those it did not set (murmur node); the
// receiver answers RunInfo with its identity, over the asker's connection, and records nothing.
struct RunQuery {
  friend bool operator==(const RunQuery&, const RunQuery&) = default;
};
struct RunInfo {
  RunIdentity run{};
  friend bool operator==(const RunInfo&, const RunInfo&) = default;
};

using Message = std::variant<Hello, Welcome, Shuffle, Ping, Ack, PingReq, LinkRequest, LinkAccept, LinkReject,
                             LinkClose, Payload, StateRequest, StateChunk, Bye, Refusal, Reachable,
                             RelayRequest, RelayOffer, RunQuery, RunInfo>;

// The training layer's message, carried as the reassembled bytes of Payloads on
// a link (gossip/wire.h encodes it). `codec_payload` is a compress/ payload:
// q = C(θ − θ̂) for a delta, or the sender's whole θ̂ for a snapshot (resync).
// A snapshot with an empty payload names the sender's θ̂ by its digest instead
// (Consensus::make_snapshot: at a run's start every peer holds the same θ̂).
struct Delta {
  uint64_t round = 0;
  uint32_t degree = 0;  // the sender's link count when it sent this
  bool snapshot = false;
  std::vector<uint8_t> codec_payload;
  std::vector<uint8_t> state_digest;  // kStateDigestBytes for a snapshot by digest, else empty
  friend bool operator==(const Delta&, const Delta&) = default;
};

// A segment of a ring all-reduce (the `allreduce` and `diloco` baselines),
// also carried as Payload bytes, on the reserved link epoch kRingEpoch.
struct RingSegment {
  uint64_t op = 0;    // which all-reduce: counts from 0 on every member alike
  uint32_t step = 0;  // 0 .. 2(P-1)-1
  std::vector<uint8_t> codec_payload;
  friend bool operator==(const RingSegment&, const RingSegment&) = default;
};
inline constexpr uint64_t kRingEpoch = ~uint64_t{0};

// Asks the other end of a link for a fresh snapshot of its public copy: our
// mirror of it is invalid (a sequence gap after a reconnect, a rejected delta).
struct ResyncRequest {
  uint64_t round = 0;
  friend bool operator==(const ResyncRequest&, const ResyncRequest&) = default;
};

using TrainMessage = std::variant<Delta, RingSegment, ResyncRequest>;

}  // namespace murmur::gossip

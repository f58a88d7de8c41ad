// CHOCO-Gossip consensus with public copies (Koloskova, Stich & Jaggi, ICML 2019),
// sans-IO: the driver moves the Deltas, owns the clock and decides deadlines.
//
// Peer i keeps θ̂_i (its public copy, which every neighbour mirrors) and, per
// neighbour link, θ̂_j. A round (docs/algorithm.md, after the outer step):
//   make_delta:  q_i = C(θ_i − θ̂_i);  θ̂_i += D(q_i)   (send q_i to every neighbour)
//   on_delta:    θ̂_j += D(q_j)                        (in per-link sequence order)
//   mix:         θ_i += γ Σ_j w_ij (θ̂_j − θ̂_i),  w_ij = 1 / (1 + max(d_i, d_j))
// What C drops stays in θ_i − θ̂_i and goes out in later rounds (error compensation).
// D is deterministic, so θ̂_i here and every neighbour's mirror of it agree bit for
// bit; the Metropolis–Hastings weights are symmetric, so mixing preserves the sum
// of the θ_i and consensus goes to the true average. No barrier: mix uses whatever
// θ̂_j are current (stale copies are fine in CHOCO).
//
// A link starts (link_up) without a copy: the other side sends a snapshot of its
// θ̂ (make_snapshot, first on the link) and until it arrives the link does not mix.
// At a run's start every peer's θ̂ is the shared initialization, so that first
// snapshot is only θ̂'s digest; a receiver whose own θ̂ has the same digest copies
// it, any other asks for the full snapshot (a 13 MB model costs 32 bytes, not 13 MB).
// A gap in the sequence, an undecodable or rejected delta leaves the link without
// a valid copy: on_delta then answers `resync` (ask the sender for a new snapshot).
//
// Threading: one thread at a time (the training thread); no I/O, no clock.
#pragma once

#include <boost/container/flat_map.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "compress/codec.h"
#include "gossip/id_table.h"
#include "gossip/messages.h"
#include "gossip/update_guard.h"

namespace murmur::gossip {

// Degrees a neighbour may claim (messages carry them; bounds the MH weights' input).
inline constexpr uint32_t kMaxDegree = 1024;

// How mix combines the neighbours' copies (docs/algorithm.md, "Guarding the average").
enum class Aggregation : uint8_t {
  mean,          // Metropolis–Hastings weights: keeps the swarm's sum exactly; no defence
  clip,          // the same, each pull θ̂_j − θ̂_i clipped to a radius (ClippedGossip)
  trimmed_mean,  // per coordinate, the mean of {0, θ̂_j − θ̂_i} without the `trim` lowest and highest
                 // (fewer when fewer than 2·trim + 1 values)
};
// "mean", "clip", "trimmed-mean"; throws std::invalid_argument naming the choices.
Aggregation parse_aggregation(const std::string& text);
const char* to_string(Aggregation a);

struct ConsensusConfig {
  double gamma = 1.0;                   // consensus step size γ in (0, 1]; smaller for sign/topk
  std::string codec = "int8:block=64";  // q = C(θ − θ̂): a compress/ spec (codec_spec.h)
  std::string snapshot_codec =
      "fp32";  // fp32 (exact mirror) or bf16 (half the bytes, copy off by ≤ 2⁻⁹ relative)
  std::vector<compress::MatrixView> layout;  // powersgd only: the matrices of θ
  NormGuardConfig guard;                     // norm outlier rejection of incoming deltas
  Aggregation aggregation = Aggregation::clip;
  double clip_radius = 0;    // clip: a fixed radius τ for every pull; 0 = adaptive
  double clip_factor = 3.0;  // clip, adaptive: τ = factor × the median distance ‖θ̂_j − θ̂_i‖ seen
  uint32_t trim = 1;         // trimmed_mean: values dropped at each end of every coordinate
};

// What on_delta did with a message.
enum class ReceiveStatus : uint8_t {
  applied,         // delta added to θ̂_j
  snapshot,        // θ̂_j replaced by the sender's public copy
  duplicate,       // sequence number already seen: ignored
  no_link,         // no link to the sender (raced with link_down): ignored
  needs_snapshot,  // the link has no valid copy (gap, earlier rejection): dropped
  rejected,        // malformed (size, NaN/Inf, bad degree): dropped
  outlier,         // a delta, or an unasked-for snapshot's change, far larger than usual: dropped
};

struct ReceiveResult {
  ReceiveStatus status = ReceiveStatus::applied;
  bool accepted = false;  // applied or snapshot
  bool resync = false;    // the link lacks a valid copy: ask the sender for a snapshot
  std::string reason;     // empty when accepted
};

struct ConsensusCounters {
  uint64_t deltas_applied = 0;
  uint64_t snapshots_applied = 0;  // full snapshots and matched digests
  uint64_t digests_matched = 0;    // of which snapshots by digest
  uint64_t duplicates = 0;
  uint64_t gaps = 0;              // sequence gaps detected
  uint64_t malformed = 0;         // DecodeError (wrong size, NaN/Inf, corrupt) or bad degree
  uint64_t norm_outliers = 0;     // rejected by the NormGuard
  uint64_t dropped_unsynced = 0;  // deltas on a link waiting for a snapshot
  uint64_t clipped = 0;           // contributions shortened by centered clipping in mix
};

struct MixReport {
  uint32_t links = 0;    // neighbours that took part
  uint32_t clipped = 0;  // of which clipped
  double radius = 0;     // the clipping radius τ used (0: no clipping)
  // Links more than 4τ away (clipped to under a quarter; left out of a trimmed mean), or at a
  // non-finite distance: far outside what the other neighbours do, which honest peers rarely are.
  std::vector<PeerId> far;
  std::optional<PeerId> heaviest;  // the link that moved θ the most (weight × clipped distance)
};

struct LinkDistance {
  PeerId peer{};
  double distance = 0;  // ‖θ_i − θ̂_j‖ / ‖θ_i‖
};

// The newest round of the sender's that a receiver's mirror holds once `d` is applied: a delta made
// in round r carries r; a snapshot carries the round after the newest delta folded into θ̂ (see
// make_full_snapshot), so r − 1. A driver waits for each neighbour's round-r delta before mixing round
// r; a fresh link's snapshot counts only if θ̂ already holds that delta.
inline int64_t newest_round(const Delta& d) { return static_cast<int64_t>(d.round) - (d.snapshot ? 1 : 0); }

class Consensus {
 public:
  // n: parameter count; seed: this peer's seed (mixed with the round for the codec's
  // randomness, so peers and rounds differ). Throws std::invalid_argument for a bad
  // spec or gamma outside (0, 1], a snapshot codec other than fp32/bf16.
  Consensus(size_t n, ConsensusConfig cfg, uint64_t seed);

  size_t size() const { return n_; }
  // Number of links (synced or not): d_i, sent in every Delta.
  uint32_t degree() const { return static_cast<uint32_t>(links_.size()); }

  // θ̂_i = theta: at start, on resume (pass the saved public copy) or after adopting
  // another state. Neighbours' mirrors are then stale: send every link a new snapshot.
  void reset_self(std::span<const float> theta);
  std::span<const float> public_copy() const { return self_; }

  // The codec for the next deltas (codec_policy.h picks it per round); payloads are
  // self-describing, so receivers need not know.
  void set_codec(const compress::CodecSpec& spec);
  // The rounds change scale (the schedule's warm-up ends: longer rounds, the outer step begins): the
  // norms and distances seen so far would refuse or clip honest updates, so the guard's and the
  // clipping radius's histories start again; the guard's prior holds meanwhile.
  void forget_scale();
  const compress::CodecSpec& codec() const { return encoder_.spec(); }

  // q = C(θ − θ̂_i), θ̂_i += D(q); the Delta goes to every neighbour (same bytes).
  // Throws std::domain_error for NaN/Inf in theta (θ̂_i then unchanged).
  Delta make_delta(std::span<const float> theta, uint64_t round);
  // θ̂_i for a new link: by digest while θ̂_i is still the round-0 starting point
  // (no delta made since reset_self), else as make_full_snapshot.
  Delta make_snapshot(uint64_t round);
  // θ̂_i in the snapshot codec: the answer to a resync, and what a late joiner adopts. `round` is the
  // driver's current round; the Delta says max(round, r + 1) when θ̂_i already holds round r's delta
  // (a snapshot sent while waiting to mix), so a neighbour in round r need not wait for that delta.
  Delta make_full_snapshot(uint64_t round) const;

  // A link (new, or a new epoch of an existing one, which drops the old copy);
  // it mixes once the peer's snapshot has arrived.
  void link_up(const PeerId& peer, uint64_t epoch);
  void link_down(const PeerId& peer);  // drops θ̂_j
  bool has_link(const PeerId& peer) const { return links_.count(peer) != 0; }
  bool link_synced(const PeerId& peer) const;
  std::vector<PeerId> synced_links() const;
  // θ̂_j, if the link has a valid copy (tests, diagnostics).
  std::optional<std::span<const float>> link_copy(const PeerId& peer) const;

  // A Delta from `peer` with its per-link sequence number (from 0 per link epoch).
  // Never throws for bad input: the result says what happened.
  ReceiveResult on_delta(const PeerId& peer, uint64_t seq, const Delta& delta);
  // Another message of the link's sequence (a ResyncRequest) took number `seq`, so the next delta
  // follows it without a gap. Returns true when a message before it was lost: the copy is invalid
  // and the caller asks for a snapshot.
  bool on_control(const PeerId& peer, uint64_t seq);

  // θ += γ Σ_j w_ij clip(θ̂_j − θ̂_i) over the synced links (or their trimmed mean: the config's
  // aggregation).
  MixReport mix(std::span<float> theta);

  // ‖θ − θ̂_j‖ / ‖θ‖ per synced link, and their mean (0 without synced links).
  std::vector<LinkDistance> link_distances(std::span<const float> theta) const;
  double consensus_distance(std::span<const float> theta) const;

  const ConsensusCounters& counters() const { return counters_; }

 private:
  struct Link {
    uint64_t epoch = 0;
    uint64_t next_seq = 0;  // the sequence number expected next
    uint32_t degree = 1;    // d_j, from its latest message
    bool synced = false;    // copy holds a valid θ̂_j
    std::vector<float> copy;
    NormHistory norms;
  };
  ReceiveResult reject(Link& link, ReceiveStatus status, std::string reason);
  // scratch_ = D(payload); throws compress::DecodeError.
  void decode_scratch(const std::vector<uint8_t>& payload);
  // Digest of θ̂_i while it has not moved since reset_self (cached), else empty.
  const std::vector<uint8_t>& pristine_digest();
  void mix_weighted(std::span<float> theta, const std::vector<double>& dist, MixReport& rep);
  void mix_trimmed(std::span<float> theta, MixReport& rep);

  size_t n_;
  ConsensusConfig cfg_;
  compress::CodecSpec snapshot_spec_;
  uint64_t seed_;
  compress::Encoder encoder_;
  NormGuard guard_;
  AdaptiveRadius radius_;
  std::vector<float> self_;  // θ̂_i
  double self_norm_ = 0;     // ‖θ̂_i‖: the guard's prior scale
  // 1 + the round of the newest delta in θ̂_i; 0 while θ̂_i is unchanged since reset_self.
  uint64_t snapshot_round_ = 0;
  std::vector<uint8_t> digest_;  // of θ̂_i while snapshot_round_ is 0, computed on first use
  std::vector<float> scratch_;   // θ − θ̂_i, then D(q)
  // Ordered: mixing sums in a fixed order. Flat: a handful of links, searched on every delta.
  boost::container::flat_map<PeerId, Link, IdLess> links_;
  ConsensusCounters counters_;
};

}  // namespace murmur::gossip

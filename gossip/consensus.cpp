#include "gossip/consensus.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "compress/codec_spec.h"
#include "compress/parallel.h"
#include "compress/wire.h"
#include "model/rng.h"

namespace murmur::gossip {

namespace {

compress::CodecSpec parse_snapshot_codec(const std::string& text) {
  const compress::CodecSpec s = compress::parse_codec_spec(text);
  if (s.codec != compress::CodecId::kFp32 && s.codec != compress::CodecId::kBf16)
    throw std::invalid_argument("snapshot codec must be fp32 or bf16, got '" + text + "'");
  return s;
}

ConsensusConfig checked(ConsensusConfig cfg) {
  if (!(cfg.gamma > 0 && cfg.gamma <= 1))
    throw std::invalid_argument("consensus gamma must be in (0, 1], got " + std::to_string(cfg.gamma));
  if (!(cfg.clip_radius >= 0) || !std::isfinite(cfg.clip_radius))
    throw std::invalid_argument("clip radius must be finite and >= 0");
  if (!(cfg.guard.factor >= 0)) throw std::invalid_argument("norm guard factor must be >= 0");
  return cfg;
}

}  // namespace

Consensus::Consensus(size_t n, ConsensusConfig cfg, uint64_t seed)
    : n_(n),
      cfg_(checked(std::move(cfg))),
      snapshot_spec_(parse_snapshot_codec(cfg_.snapshot_codec)),
      seed_(seed),
      encoder_(compress::parse_codec_spec(cfg_.codec)),
      guard_(cfg_.guard),
      self_(n, 0.0f),
      scratch_(n, 0.0f) {}

void Consensus::reset_self(std::span<const float> theta) {
  if (theta.size() != n_)
    throw std::invalid_argument("reset_self: " + std::to_string(theta.size()) + " values, expected " +
                                std::to_string(n_));
  std::copy(theta.begin(), theta.end(), self_.begin());
  encoder_.reset();
  snapshot_round_ = 0;
  digest_.clear();
}

const std::vector<uint8_t>& Consensus::pristine_digest() {
  if (snapshot_round_ == 0 && digest_.empty()) {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
    digest_.resize(kStateDigestBytes);
    crypto_generichash(digest_.data(), digest_.size(), reinterpret_cast<const unsigned char*>(self_.data()),
                       self_.size() * sizeof(float), nullptr, 0);
  }
  return digest_;
}

void Consensus::set_codec(const compress::CodecSpec& spec) {
  if (to_string(spec) == to_string(encoder_.spec())) return;  // keep PowerSGD's warm start
  encoder_ = compress::Encoder(spec);
}

Delta Consensus::make_delta(std::span<const float> theta, uint64_t round) {
  if (theta.size() != n_)
    throw std::invalid_argument("make_delta: " + std::to_string(theta.size()) + " values, expected " +
                                std::to_string(n_));
  compress::parallel_for(n_, [&](size_t k) { scratch_[k] = theta[k] - self_[k]; });
  Delta d;
  d.round = round;
  d.degree = degree();
  // Distinct randomness per peer and round; receivers decode without the seed.
  encoder_.encode(scratch_, {.seed = mix64(seed_ ^ mix64(round)), .layout = cfg_.layout}, d.codec_payload);
  // θ̂_i += D(q) exactly as receivers compute it (decode into scratch, then add).
  decode_scratch(d.codec_payload);
  compress::parallel_for(n_, [&](size_t k) { self_[k] += scratch_[k]; });
  snapshot_round_ = round + 1;
  digest_.clear();
  return d;
}

Delta Consensus::make_snapshot(uint64_t round) {
  // Only round 0 is a shared starting point; a resumed peer's state is its own.
  if (round != 0 || snapshot_round_ != 0) return make_full_snapshot(round);
  Delta d;
  d.round = round;
  d.degree = degree();
  d.snapshot = true;
  d.state_digest = pristine_digest();
  return d;
}

Delta Consensus::make_full_snapshot(uint64_t round) const {
  Delta d;
  d.round = std::max(round, snapshot_round_);
  d.degree = degree();
  d.snapshot = true;
  compress::Encoder(snapshot_spec_).encode(self_, {}, d.codec_payload);
  return d;
}

void Consensus::link_up(const PeerId& peer, uint64_t epoch) {
  auto it = links_.find(peer);
  if (it != links_.end() && it->second.epoch == epoch) return;  // repeated event
  Link l{.epoch = epoch,
         .next_seq = 0,
         .degree = 1,
         .synced = false,
         .copy = {},
         .norms = guard_.make_history()};
  links_.insert_or_assign(peer, std::move(l));
}

void Consensus::link_down(const PeerId& peer) { links_.erase(peer); }

bool Consensus::link_synced(const PeerId& peer) const {
  auto it = links_.find(peer);
  return it != links_.end() && it->second.synced;
}

std::optional<std::span<const float>> Consensus::link_copy(const PeerId& peer) const {
  auto it = links_.find(peer);
  if (it == links_.end() || !it->second.synced) return std::nullopt;
  return std::span<const float>(it->second.copy);
}

void Consensus::decode_scratch(const std::vector<uint8_t>& payload) { compress::decode(payload, scratch_); }

ReceiveResult Consensus::reject(Link& link, ReceiveStatus status, std::string reason) {
  // θ̂_j missed (or would be corrupted by) this increment: only a snapshot repairs it.
  link.synced = false;
  return ReceiveResult{status, false, true, std::move(reason)};
}

bool Consensus::on_control(const PeerId& peer, uint64_t seq) {
  auto it = links_.find(peer);
  if (it == links_.end() || seq < it->second.next_seq || seq == UINT64_MAX) return false;
  Link& l = it->second;
  const bool gap = seq > l.next_seq;
  l.next_seq = seq + 1;
  if (!gap) return false;
  ++counters_.gaps;
  l.synced = false;
  return true;
}

ReceiveResult Consensus::on_delta(const PeerId& peer, uint64_t seq, const Delta& delta) {
  auto it = links_.find(peer);
  if (it == links_.end()) return {ReceiveStatus::no_link, false, false, "no link to this peer"};
  Link& l = it->second;
  if (seq < l.next_seq) {
    ++counters_.duplicates;
    return {
        ReceiveStatus::duplicate, false, false,
        "sequence " + std::to_string(seq) + " already seen (expected " + std::to_string(l.next_seq) + ")"};
  }
  if (seq == UINT64_MAX) {  // would wrap next_seq and replay the link
    ++counters_.malformed;
    return reject(l, ReceiveStatus::rejected, "sequence number out of range");
  }
  const bool gap = seq > l.next_seq;
  l.next_seq = seq + 1;
  if (delta.degree < 1 || delta.degree > kMaxDegree) {
    ++counters_.malformed;
    return reject(l, ReceiveStatus::rejected, "degree " + std::to_string(delta.degree) + " out of range");
  }
  if (delta.snapshot && !delta.state_digest.empty()) {
    if (delta.state_digest.size() != kStateDigestBytes || !delta.codec_payload.empty()) {
      ++counters_.malformed;
      return reject(l, ReceiveStatus::rejected, "malformed snapshot digest");
    }
    if (delta.state_digest != pristine_digest())
      return reject(l, ReceiveStatus::needs_snapshot, "snapshot digest differs from our state");
    l.degree = delta.degree;
    l.copy = self_;
    l.synced = true;
    ++counters_.snapshots_applied;
    ++counters_.digests_matched;
    return {ReceiveStatus::snapshot, true, false, {}};
  }
  if (!delta.snapshot) {
    if (!delta.state_digest.empty()) {
      ++counters_.malformed;
      return reject(l, ReceiveStatus::rejected, "a delta with a state digest");
    }
    if (gap) {
      ++counters_.gaps;
      return reject(l, ReceiveStatus::needs_snapshot, "sequence gap before " + std::to_string(seq));
    }
    if (!l.synced) {
      ++counters_.dropped_unsynced;
      return reject(l, ReceiveStatus::needs_snapshot, "link waits for a snapshot");
    }
  }
  try {
    decode_scratch(delta.codec_payload);
  } catch (const compress::DecodeError& e) {
    ++counters_.malformed;
    return reject(l, ReceiveStatus::rejected, e.what());
  }
  l.degree = delta.degree;
  if (delta.snapshot) {
    // A snapshot is the sender's whole θ̂, not an increment: no norm check (clipping bounds it).
    l.copy.assign(scratch_.begin(), scratch_.end());
    l.synced = true;
    ++counters_.snapshots_applied;
    return {ReceiveStatus::snapshot, true, false, {}};
  }
  const double norm = l2_norm(scratch_);
  if (!guard_.admit(norm, l.norms)) {
    ++counters_.norm_outliers;
    return reject(l, ReceiveStatus::rejected, "delta norm " + std::to_string(norm) + " is an outlier");
  }
  float* copy = l.copy.data();
  compress::parallel_for(n_, [&](size_t k) { copy[k] += scratch_[k]; });
  ++counters_.deltas_applied;
  return {ReceiveStatus::applied, true, false, {}};
}

MixReport Consensus::mix(std::span<float> theta) {
  if (theta.size() != n_)
    throw std::invalid_argument("mix: " + std::to_string(theta.size()) + " values, expected " +
                                std::to_string(n_));
  MixReport rep;
  const uint32_t di = degree();
  for (const auto& [peer, l] : links_) {
    if (!l.synced) continue;
    const double w = 1.0 / (1.0 + std::max(di, l.degree));
    const double s = cfg_.clip_radius > 0 ? clip_scale(l2_distance(l.copy, self_), cfg_.clip_radius) : 1.0;
    if (s < 1.0) ++rep.clipped;
    ++rep.links;
    const float a = static_cast<float>(cfg_.gamma * w * s);
    const float* c = l.copy.data();
    const float* h = self_.data();
    compress::parallel_for(n_, [&](size_t k) { theta[k] += a * (c[k] - h[k]); });
  }
  counters_.clipped += rep.clipped;
  return rep;
}

std::vector<LinkDistance> Consensus::link_distances(std::span<const float> theta) const {
  std::vector<LinkDistance> out;
  const double norm = l2_norm(theta);
  for (const auto& [peer, l] : links_) {
    if (!l.synced) continue;
    const double d = l2_distance(theta, l.copy);
    out.push_back({peer, norm > 0 ? d / norm : d});
  }
  return out;
}

double Consensus::consensus_distance(std::span<const float> theta) const {
  const std::vector<LinkDistance> d = link_distances(theta);
  if (d.empty()) return 0.0;
  double s = 0;
  for (const auto& x : d) s += x.distance;
  return s / static_cast<double>(d.size());
}

}  // namespace murmur::gossip

#include "gossip/consensus.h"

#include <sodium.h>

#include <algorithm>
#include <array>
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
  if (!(cfg.clip_factor > 0) || !std::isfinite(cfg.clip_factor))
    throw std::invalid_argument("clip factor must be finite and > 0");
  if (cfg.trim == 0 || cfg.trim > kMaxDegree) throw std::invalid_argument("trim must be in 1..1024");
  if (!(cfg.gamma > 0 && cfg.gamma <= 1))
    throw std::invalid_argument("consensus gamma must be in (0, 1], got " + std::to_string(cfg.gamma));
  if (!(cfg.clip_radius >= 0) || !std::isfinite(cfg.clip_radius))
    throw std::invalid_argument("clip radius must be finite and >= 0");
  if (!(cfg.guard.factor >= 0)) throw std::invalid_argument("norm guard factor must be >= 0");
  return cfg;
}

}  // namespace

Aggregation parse_aggregation(const std::string& text) {
  for (const Aggregation a : {Aggregation::mean, Aggregation::clip, Aggregation::trimmed_mean})
    if (text == to_string(a)) return a;
  throw std::invalid_argument("aggregation must be mean, clip or trimmed-mean, got '" + text + "'");
}

const char* to_string(Aggregation a) {
  switch (a) {
    case Aggregation::mean:
      return "mean";
    case Aggregation::clip:
      return "clip";
    case Aggregation::trimmed_mean:
      return "trimmed-mean";
  }
  return "?";
}

Consensus::Consensus(size_t n, ConsensusConfig cfg, uint64_t seed)
    : n_(n),
      cfg_(checked(std::move(cfg))),
      snapshot_spec_(parse_snapshot_codec(cfg_.snapshot_codec)),
      seed_(seed),
      encoder_(compress::parse_codec_spec(cfg_.codec)),
      guard_(cfg_.guard),
      radius_(cfg_.clip_factor, cfg_.guard.window),
      self_(n, 0.0f),
      scratch_(n, 0.0f) {}

void Consensus::reset_self(std::span<const float> theta) {
  if (theta.size() != n_)
    throw std::invalid_argument("reset_self: " + std::to_string(theta.size()) + " values, expected " +
                                std::to_string(n_));
  std::copy(theta.begin(), theta.end(), self_.begin());
  self_norm_ = l2_norm(self_);
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

void Consensus::forget_scale() {
  guard_.forget();
  radius_.forget();
  for (auto& kv : links_) kv.second.norms.clear();
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
  guard_.record_own(l2_norm(scratch_));
  compress::parallel_for(n_, [&](size_t k) { self_[k] += scratch_[k]; });
  self_norm_ = l2_norm(self_);
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
  if (it == links_.end() && links_.size() >= kMaxDegree)
    throw std::length_error("more than " + std::to_string(kMaxDegree) + " links");
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

std::vector<PeerId> Consensus::synced_links() const {
  std::vector<PeerId> out;
  for (const auto& [peer, l] : links_)
    if (l.synced) out.push_back(peer);
  return out;
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
  if (delta.snapshot) {
    // A snapshot we asked for (the link had no copy) is a whole state, bounded in mix by clipping.
    // One on a synced link replaces a copy that was fine: its change is checked like a delta's, so
    // snapshots sent every round cannot move the mirror further than deltas could.
    if (l.synced) {
      const double change = l2_distance(scratch_, l.copy);
      if (!guard_.admit(change, l.norms, self_norm_)) {
        ++counters_.norm_outliers;
        return reject(l, ReceiveStatus::outlier,
                      "unasked-for snapshot moves the copy by " + std::to_string(change) + ", an outlier");
      }
    }
    l.degree = delta.degree;
    l.copy.assign(scratch_.begin(), scratch_.end());
    l.synced = true;
    ++counters_.snapshots_applied;
    return {ReceiveStatus::snapshot, true, false, {}};
  }
  const double norm = l2_norm(scratch_);
  if (!guard_.admit(norm, l.norms, self_norm_)) {
    ++counters_.norm_outliers;
    return reject(l, ReceiveStatus::outlier, "delta norm " + std::to_string(norm) + " is an outlier");
  }
  l.degree = delta.degree;
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
  std::vector<double> dist;
  for (const auto& [peer, l] : links_)
    if (l.synced) dist.push_back(l2_distance(l.copy, self_));
  // The radius clips in `clip` and only marks far links in `trimmed_mean`; `mean` has no defence.
  if (cfg_.aggregation != Aggregation::mean)
    rep.radius = cfg_.clip_radius > 0 ? cfg_.clip_radius : radius_.next(dist);
  size_t k = 0;
  double farthest = 0;
  for (const auto& [peer, l] : links_) {
    if (!l.synced) continue;
    const double d = dist[k++];
    if (!std::isfinite(d) || (rep.radius > 0 && d > 4 * rep.radius)) {
      rep.far.push_back(peer);
    } else if (cfg_.aggregation == Aggregation::trimmed_mean && d > farthest) {
      farthest = d;  // a trimmed mean has no per-link weight: the farthest copy mixed is the heaviest
      rep.heaviest = peer;
    }
  }
  if (cfg_.aggregation == Aggregation::trimmed_mean)
    mix_trimmed(theta, rep);
  else
    mix_weighted(theta, dist, rep);
  counters_.clipped += rep.clipped;
  return rep;
}

void Consensus::mix_weighted(std::span<float> theta, const std::vector<double>& dist, MixReport& rep) {
  const bool clip = cfg_.aggregation == Aggregation::clip;
  const uint32_t di = degree();
  size_t k = 0;
  double heaviest = 0;
  for (const auto& [peer, l] : links_) {
    if (!l.synced) continue;
    const double d = dist[k++];
    // Only a non-finite distance clips a link when clipping is off (its pull would be NaN).
    const double s = clip ? clip_scale(d, rep.radius) : (std::isfinite(d) ? 1.0 : 0.0);
    if (s < 1.0) ++rep.clipped;
    ++rep.links;
    if (s == 0.0) continue;
    const float a = static_cast<float>(cfg_.gamma * s / (1.0 + std::max(di, l.degree)));
    if (a * d > heaviest) {
      heaviest = a * d;
      rep.heaviest = peer;
    }
    const float* c = l.copy.data();
    const float* h = self_.data();
    compress::parallel_for(n_, [&](size_t i) { theta[i] += a * (c[i] - h[i]); });
  }
}

void Consensus::mix_trimmed(std::span<float> theta, MixReport& rep) {
  std::vector<const float*> copies;
  for (const auto& [peer, l] : links_)
    if (l.synced && std::find(rep.far.begin(), rep.far.end(), peer) == rep.far.end())
      copies.push_back(l.copy.data());
  rep.links = static_cast<uint32_t>(copies.size());
  const size_t m = copies.size() + 1;  // with our own pull, 0
  // Few links: trim what leaves at least one value (with one link, the plain mean of {0, pull}).
  const size_t trim = std::min<size_t>(cfg_.trim, (m - 1) / 2), kept = m - 2 * trim;
  const float* h = self_.data();
  const double gamma = cfg_.gamma;
  compress::parallel_for(n_, [&](size_t i) {
    std::array<float, kMaxDegree + 1> v;  // m ≤ kMaxDegree + 1: link_up refuses more links
    v[0] = 0.0f;
    for (size_t j = 0; j < copies.size(); ++j) v[j + 1] = copies[j][i] - h[i];
    std::sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(m));
    double sum = 0;
    for (size_t j = trim; j < trim + kept; ++j) sum += v[j];
    theta[i] += static_cast<float>(gamma * sum / static_cast<double>(kept));
  });
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

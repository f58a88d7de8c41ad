// Guards the average against bad updates from neighbours. Two independent parts:
//  * NormGuard: rejects a delta whose norm is far above the recent norms of its
//    link (or, while the link is young, of all links): norm > factor × running
//    median, after a warm-up. Malformed payloads (wrong size, NaN/Inf) are caught
//    earlier by the decoder (compress::DecodeError).
//  * clip_to_radius: centered clipping (Karimireddy, He & Jaggi 2021; in gossip
//    form, He, Karimireddy & Jaggi 2022 "ClippedGossip"): a neighbour's pull
//    θ̂_j − θ̂_i is scaled down to an L2 radius τ, so one neighbour moves θ_i by
//    at most γ·w_ij·τ per round however large its values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace murmur::gossip {

struct NormGuardConfig {
  double factor = 20;    // reject norm > factor × median; 0 disables the check
  uint32_t window = 32;  // norms remembered per history
  uint32_t warmup = 8;   // accepted norms needed before a history is used
};

// The last `window` accepted norms of one link (or of all links).
class NormHistory {
 public:
  explicit NormHistory(uint32_t window) : window_(window) {}
  void add(double norm);
  size_t count() const { return norms_.size(); }
  // Median of the remembered norms; nullopt when empty.
  std::optional<double> median() const;

 private:
  uint32_t window_;
  size_t next_ = 0;  // ring position once full
  std::vector<double> norms_;
};

class NormGuard {
 public:
  explicit NormGuard(NormGuardConfig cfg) : cfg_(cfg), all_(cfg.window) {}
  const NormGuardConfig& config() const { return cfg_; }
  NormHistory make_history() const { return NormHistory(cfg_.window); }
  // Whether `norm` (of a delta on the link whose history is `link`) is acceptable;
  // an accepted norm is recorded in both histories, a rejected one in neither (so
  // an attacker cannot drag the median up). The reference is the link's median
  // once it has `warmup` norms, else the all-links median, else none (accept).
  bool admit(double norm, NormHistory& link);

 private:
  std::optional<double> reference(const NormHistory& link) const;
  NormGuardConfig cfg_;
  NormHistory all_;
};

// The factor in [0, 1] that scales a vector of L2 norm `norm` into the ball of
// radius `tau` (1 when tau <= 0, i.e. clipping off, or when already inside).
double clip_scale(double norm, double tau);

// L2 norm, accumulated in double in index order (deterministic).
double l2_norm(std::span<const float> x);
// ‖a − b‖₂, same order.
double l2_distance(std::span<const float> a, std::span<const float> b);

}  // namespace murmur::gossip

// Guards the average against bad updates from neighbours. Two independent parts:
//  * NormGuard: rejects a delta whose norm is far above the recent norms of its
//    link (or, while the link is young, of all links and of this peer's own
//    deltas): norm > factor × running median. Before any history exists a prior
//    still holds: no increment may exceed max_relative × ‖θ̂_i‖. Malformed payloads
//    (wrong size, NaN/Inf) are caught earlier by the decoder (compress::DecodeError).
//  * Centered clipping (Karimireddy, He & Jaggi 2021; in gossip form, He,
//    Karimireddy & Jaggi 2022 "ClippedGossip"): a neighbour's pull θ̂_j − θ̂_i is
//    scaled down to an L2 radius τ, so one neighbour moves θ_i by at most γ·w_ij·τ
//    per round however large its values. AdaptiveRadius picks τ from the distances
//    this peer observes, so no one has to know the parameters' scale.
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
  // Prior for young links and the first rounds: an increment larger than this × ‖θ̂_i‖ moves the
  // model further than a round of training does (it refused no honest delta in the lab's clean runs);
  // 0 disables it.
  double max_relative = 2.0;
};

// The last `window` accepted norms of one link (or of all links).
class NormHistory {
 public:
  explicit NormHistory(uint32_t window) : window_(window) {}
  void add(double norm);
  size_t count() const { return norms_.size(); }
  // Median of the remembered norms; nullopt when empty.
  std::optional<double> median() const;
  const std::vector<double>& values() const { return norms_; }
  void clear() {
    norms_.clear();
    next_ = 0;
  }

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
  // once it has `warmup` norms, else the all-links median (own deltas included),
  // else only the prior: norm ≤ max_relative × `scale` (‖θ̂_i‖; 0 = no prior).
  bool admit(double norm, NormHistory& link, double scale);
  // This peer's own delta norm: an honest sample of the scale, for young links.
  void record_own(double norm);
  // Forgets the all-links history (links' own histories are theirs to clear): the prior holds again.
  void forget() { all_.clear(); }

 private:
  std::optional<double> reference(const NormHistory& link) const;
  NormGuardConfig cfg_;
  NormHistory all_;
};

// The factor in [0, 1] that scales a vector of L2 norm `norm` into the ball of
// radius `tau` (1 when tau <= 0, i.e. clipping off, or when already inside; 0 for
// a non-finite norm).
double clip_scale(double norm, double tau);

// The clipping radius of each mix: factor × the lower median of the distances
// ‖θ̂_j − θ̂_i‖ of this mix and of the last `window` ones, each recorded as clipped
// (min(d, τ)), so a minority of far neighbours can neither set τ nor raise it
// over time. Honest distances shrink as training converges and τ follows them.
class AdaptiveRadius {
 public:
  AdaptiveRadius(double factor, uint32_t window) : factor_(factor), history_(window) {}
  // τ for one mix over links at `distances` (non-finite ones are ignored); 0 when none is finite.
  double next(std::span<const double> distances);
  void forget() { history_.clear(); }

 private:
  double factor_;
  NormHistory history_;
};

// L2 norm, accumulated in double in index order (deterministic).
double l2_norm(std::span<const float> x);
// ‖a − b‖₂, same order.
double l2_distance(std::span<const float> a, std::span<const float> b);

}  // namespace murmur::gossip

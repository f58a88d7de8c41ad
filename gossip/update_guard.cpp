#include "gossip/update_guard.h"

#include <algorithm>
#include <cmath>

namespace murmur::gossip {

void NormHistory::add(double norm) {
  if (window_ == 0) return;
  if (norms_.size() < window_) {
    norms_.push_back(norm);
  } else {
    norms_[next_] = norm;
    next_ = (next_ + 1) % window_;
  }
}

std::optional<double> NormHistory::median() const {
  if (norms_.empty()) return std::nullopt;
  std::vector<double> v = norms_;
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

std::optional<double> NormGuard::reference(const NormHistory& link) const {
  if (link.count() >= cfg_.warmup) return link.median();
  if (all_.count() >= cfg_.warmup) return all_.median();
  return std::nullopt;
}

bool NormGuard::admit(double norm, NormHistory& link, double scale) {
  if (!std::isfinite(norm)) return false;
  if (cfg_.max_relative > 0 && scale > 0 && norm > cfg_.max_relative * scale) return false;
  if (cfg_.factor > 0) {
    // A zero median (converged, all-zero deltas) gives no scale to compare with.
    const std::optional<double> ref = reference(link);
    if (ref && *ref > 0 && norm > cfg_.factor * *ref) return false;
  }
  link.add(norm);
  all_.add(norm);
  return true;
}

void NormGuard::record_own(double norm) {
  if (std::isfinite(norm)) all_.add(norm);
}

double clip_scale(double norm, double tau) {
  if (!std::isfinite(norm)) return 0.0;
  if (tau <= 0 || norm <= tau) return 1.0;
  return tau / norm;
}

double AdaptiveRadius::next(std::span<const double> distances) {
  std::vector<double> v = history_.values();
  for (const double d : distances)
    if (std::isfinite(d)) v.push_back(d);
  const size_t fresh = v.size() - history_.count();
  if (fresh == 0) return 0.0;
  // The lower median: with two links and one of them hostile, the honest one sets the scale.
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>((v.size() - 1) / 2);
  std::nth_element(v.begin(), mid, v.end());
  const double tau = factor_ * *mid;
  for (const double d : distances)
    if (std::isfinite(d)) history_.add(std::min(d, tau));
  return tau;
}

double l2_norm(std::span<const float> x) {
  double s = 0;
  for (const float v : x) s += static_cast<double>(v) * v;
  return std::sqrt(s);
}

double l2_distance(std::span<const float> a, std::span<const float> b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    s += d * d;
  }
  return std::sqrt(s);
}

}  // namespace murmur::gossip

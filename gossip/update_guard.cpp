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

bool NormGuard::admit(double norm, NormHistory& link) {
  if (!std::isfinite(norm)) return false;
  if (cfg_.factor > 0) {
    // A zero median (converged, all-zero deltas) gives no scale to compare with.
    const std::optional<double> ref = reference(link);
    if (ref && *ref > 0 && norm > cfg_.factor * *ref) return false;
  }
  link.add(norm);
  all_.add(norm);
  return true;
}

double clip_scale(double norm, double tau) {
  if (tau <= 0 || norm <= tau) return 1.0;
  return tau / norm;
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

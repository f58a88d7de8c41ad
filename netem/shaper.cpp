#include "netem/shaper.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace murmur::netem {
namespace {

constexpr Nanos kNever = Nanos::max();
constexpr Nanos kMaxDelay = std::chrono::seconds(60);

}  // namespace

uint64_t default_burst(double rate_bps) {
  if (std::isinf(rate_bps)) return uint64_t(1) << 20;
  return std::max<uint64_t>(1500, uint64_t(rate_bps / 8 * 0.005));
}

void validate(const LinkProfile& p) {
  if (!(p.rate_bps > 0)) throw std::invalid_argument("bandwidth must be positive (or unlimited)");
  if (p.delay < Nanos(0) || p.delay > kMaxDelay) throw std::invalid_argument("delay must be within 0..60s");
  if (p.jitter < Nanos(0) || p.jitter > kMaxDelay)
    throw std::invalid_argument("jitter must be within 0..60s");
  if (p.burst_bytes > (uint64_t(1) << 30)) throw std::invalid_argument("burst must be at most 1 GiB");
  for (const double pct : {p.loss, p.duplicate, p.reorder}) {
    if (!(pct >= 0 && pct <= 100))
      throw std::invalid_argument("loss, duplicate and reorder must be within 0..100%");
  }
}

Shaper::Shaper(const LinkProfile& profile, uint64_t seed)
    : profile_(profile),
      burst_(profile.burst_bytes ? profile.burst_bytes : default_burst(profile.rate_bps)),
      tokens_(double(burst_)),
      rng_(seed) {
  validate(profile);
}

void Shaper::set_profile(Nanos now, const LinkProfile& profile) {
  validate(profile);
  if (now > at_) accrue(now);
  profile_ = profile;
  burst_ = profile.burst_bytes ? profile.burst_bytes : default_burst(profile.rate_bps);
  tokens_ = std::min(tokens_, double(burst_));
}

void Shaper::set_trace(std::vector<TracePoint> trace) {
  for (size_t i = 0; i < trace.size(); ++i) {
    const std::string where = "trace point " + std::to_string(i);
    if (i > 0 && trace[i].at <= trace[i - 1].at) throw std::invalid_argument(where + ": times must increase");
    validate(LinkProfile{.rate_bps = trace[i].rate_bps, .delay = trace[i].delay});
  }
  trace_ = std::move(trace);
}

void Shaper::add_stall(Window w) {
  if (w.end <= w.start || w.start < Nanos(0)) throw std::invalid_argument("stall: end must be after start");
  stalls_.push_back(w);
  std::sort(stalls_.begin(), stalls_.end(),
            [](const Window& a, const Window& b) { return a.start < b.start; });
}

double Shaper::rate_at(Nanos t) const {
  for (const Window& w : stalls_) {
    if (t >= w.start && t < w.end) return 0;
  }
  double bps = profile_.rate_bps;
  for (const TracePoint& p : trace_) {
    if (p.at > t) break;
    bps = p.rate_bps;
  }
  return bps / 8;
}

Nanos Shaper::delay_at(Nanos t) const {
  Nanos d = profile_.delay;
  for (const TracePoint& p : trace_) {
    if (p.at > t) break;
    d = p.delay;
  }
  return d;
}

Nanos Shaper::next_change(Nanos t) const {
  Nanos next = kNever;
  for (const Window& w : stalls_) {
    if (w.start > t) next = std::min(next, w.start);
    if (w.end > t) next = std::min(next, w.end);
  }
  for (const TracePoint& p : trace_) {
    if (p.at > t) return std::min(next, p.at);
  }
  return next;
}

void Shaper::accrue(Nanos t) {
  while (at_ < t && tokens_ < double(burst_)) {
    const double rate = rate_at(at_);
    const Nanos end = std::min(t, next_change(at_));
    tokens_ = std::isinf(rate) ? double(burst_)
                               : std::min(double(burst_),
                                          tokens_ + rate * std::chrono::duration<double>(end - at_).count());
    at_ = end;
  }
  at_ = std::max(at_, t);
}

Nanos Shaper::time_for_tokens(double need) {
  while (tokens_ < need) {
    const double rate = rate_at(at_);
    const Nanos change = next_change(at_);
    if (std::isinf(rate)) {
      tokens_ = double(burst_);
      break;
    }
    if (rate > 0) {
      // Whole nanoseconds, rounded up, so the bucket never runs ahead of its rate.
      const double ns = std::ceil((need - tokens_) / rate * 1e9 - 1e-6);
      if (change == kNever || double(at_.count()) + ns <= double(change.count())) {
        at_ += Nanos(int64_t(ns));
        tokens_ = need;
        break;
      }
    }
    if (change == kNever) return kNever;
    tokens_ += rate * std::chrono::duration<double>(change - at_).count();
    at_ = change;
  }
  return at_;
}

Nanos Shaper::after_stalls(Nanos t) const {
  for (const Window& w : stalls_) {  // sorted by start, so chained stalls are crossed in one pass
    if (t >= w.start && t < w.end) t = w.end;
  }
  return t;
}

Nanos Shaper::jitter() {
  if (profile_.jitter == Nanos(0)) return Nanos(0);
  uint64_t z = (rng_ += 0x9e3779b97f4a7c15ULL);  // splitmix64
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  const uint64_t span = 2 * uint64_t(profile_.jitter.count()) + 1;
  return Nanos(int64_t(z % span) - profile_.jitter.count());
}

Nanos Shaper::busy_until() const {
  if (tokens_ >= 0 || std::isinf(profile_.rate_bps)) return at_;
  return at_ + Nanos(int64_t(std::ceil(-tokens_ / (profile_.rate_bps / 8) * 1e9)));
}

Nanos Shaper::depart(Nanos arrival, uint64_t bytes) {
  if (arrival > at_) accrue(arrival);
  const Nanos departure = time_for_tokens(std::min(double(bytes), double(burst_)));
  if (departure != kNever) tokens_ -= double(bytes);
  return departure;
}

Nanos Shaper::release(Nanos arrival, uint64_t bytes) {
  const Nanos departure = depart(arrival, bytes);
  if (departure == kNever) return kNever;
  const Nanos one_way = std::max(Nanos(0), delay_at(departure) + jitter());
  last_release_ = after_stalls(std::max(last_release_, departure + one_way));
  return last_release_;
}

}  // namespace murmur::netem

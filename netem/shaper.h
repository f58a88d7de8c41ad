// The shaping model of one direction of a link, sans-IO: given when a chunk of bytes arrived, it says when
// the chunk reaches the other end. No clocks and no sockets, so tests drive it with a virtual clock and the
// relay (netem/relay.h) with the steady clock. Times are nanoseconds since the link's epoch.
//
// Model, in order:
//  1. Token bucket: tokens accrue at rate/8 bytes per second up to `burst` bytes. A chunk departs at the
//     earliest time >= its arrival and >= the previous departure at which the bucket holds min(size, burst)
//     tokens; then size tokens are taken (a chunk larger than the burst leaves a debt), so the long-run rate
//     is exact whatever the chunk sizes. The bucket starts full.
//  2. Stalls: windows [start, end) in which nothing flows: tokens do not accrue and nothing is released;
//     a release that falls in a stall moves to its end.
//  3. Trace: a piecewise-constant schedule of (rate, delay); point k applies from its `at` until the next
//     point. Before the first point (and with no trace) the profile applies.
//  4. Delay and jitter: release = departure + delay + U, U uniform in [-jitter, +jitter] (a seeded
//     splitmix64 stream, so runs are reproducible), the sum clamped at 0; then release = max(release,
//     previous release): bytes within a stream are never reordered, jitter only spreads their spacing.
#pragma once

#include <cstdint>
#include <vector>

#include "netem/units.h"

namespace murmur::netem {

struct LinkProfile {
  double rate_bps = kUnlimited;  // bit/s
  uint64_t burst_bytes = 0;      // 0: default_burst(rate_bps)
  Nanos delay{0};                // one-way
  Nanos jitter{0};               // half-width of the uniform jitter
  // Packet-level impairments in percent: only the kernel backend (`tc netem`) can apply them; the relay
  // forwards a TCP stream, which has no packets to lose.
  double loss = 0, duplicate = 0, reorder = 0;

  bool operator==(const LinkProfile&) const = default;
  bool unshaped() const { return rate_bps == kUnlimited && delay == Nanos(0) && jitter == Nanos(0); }
  bool impairs_packets() const { return loss > 0 || duplicate > 0 || reorder > 0; }
};

// 5 ms worth of bytes at the rate, at least 1500 B (one MTU); 1 MiB when unlimited.
uint64_t default_burst(double rate_bps);

// Throws std::invalid_argument naming the bad field (rate must be > 0, delay/jitter >= 0 and <= 60 s,
// percentages within 0..100).
void validate(const LinkProfile& p);

struct TracePoint {
  Nanos at{0};
  double rate_bps = kUnlimited;
  Nanos delay{0};
};

struct Window {
  Nanos start{0}, end{0};
};

class Shaper {
 public:
  explicit Shaper(const LinkProfile& profile = {}, uint64_t seed = 1);

  // The profile from `now` on; tokens accrued so far at the old rate are kept (up to the new burst).
  void set_profile(Nanos now, const LinkProfile& profile);
  // Replaces the trace; points must have increasing `at`, positive rates and non-negative delays.
  void set_trace(std::vector<TracePoint> trace);
  void add_stall(Window w);

  // When a chunk of `bytes` that arrived at `arrival` reaches the other end. Arrivals must not go back in
  // time. Returns Nanos::max() if it never would (a stall or trace that never ends).
  Nanos release(Nanos arrival, uint64_t bytes);
  // Only step 1 and 2's departure: when the chunk leaves the bucket (no delay, jitter or ordering rule).
  // The relay books a chunk on a shared link this way (netem/relay.h, Relay::add_shared).
  Nanos depart(Nanos arrival, uint64_t bytes);

  const LinkProfile& profile() const { return profile_; }
  uint64_t burst() const { return burst_; }
  // When the bucket has paid for every chunk departed so far (at the profile's rate): in the future
  // while chunks are booked ahead.
  Nanos busy_until() const;
  // True when no rule delays anything: the relay then forwards without timers.
  bool unshaped() const { return profile_.unshaped() && trace_.empty() && stalls_.empty(); }

 private:
  double rate_at(Nanos t) const;  // bytes per second; 0 in a stall
  Nanos delay_at(Nanos t) const;
  Nanos next_change(Nanos t) const;    // first rule boundary after t, Nanos::max() if none
  void accrue(Nanos t);                // bring the bucket to time t >= at_
  Nanos time_for_tokens(double need);  // from at_; advances the bucket to the answer
  Nanos after_stalls(Nanos t) const;
  Nanos jitter();

  LinkProfile profile_;
  uint64_t burst_;
  std::vector<TracePoint> trace_;
  std::vector<Window> stalls_;
  double tokens_;
  Nanos at_{0};            // the bucket's time: the last departure or rule change
  Nanos last_release_{0};  // releases are monotonic: no reordering
  uint64_t rng_;
};

}  // namespace murmur::netem

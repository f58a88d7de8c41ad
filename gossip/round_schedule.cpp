#include "gossip/round_schedule.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace murmur::gossip {

namespace {
constexpr int64_t kMaxSteps = int64_t{1} << 40;  // far beyond any run; keeps round × H from overflowing
}

void RoundSchedule::validate() const {
  if (inner_steps < 1 || inner_steps > kMaxSteps)
    throw std::invalid_argument("inner-steps must be within 1..2^40, got " + std::to_string(inner_steps));
  if (warmup_steps < 0 || warmup_steps > kMaxSteps)
    throw std::invalid_argument("warmup-steps must be within 0..2^40, got " + std::to_string(warmup_steps));
  if (warmup_inner_steps < 1 || warmup_inner_steps > kMaxSteps)
    throw std::invalid_argument("warmup-inner-steps must be within 1..2^40, got " +
                                std::to_string(warmup_inner_steps));
}

int64_t RoundSchedule::warmup_rounds() const {
  return (warmup_steps + warmup_inner_steps - 1) / warmup_inner_steps;
}

bool RoundSchedule::warming_up(uint64_t round) const { return round < uint64_t(warmup_rounds()); }

int64_t RoundSchedule::first_step(uint64_t round) const {
  const uint64_t w = uint64_t(warmup_rounds());
  if (round <= w) return std::min(int64_t(round) * warmup_inner_steps, warmup_steps);
  const uint64_t after = round - w;
  if (after > uint64_t(std::numeric_limits<int64_t>::max() - warmup_steps) / uint64_t(inner_steps))
    return std::numeric_limits<int64_t>::max();  // a round no run reaches (a stranger's round number)
  return warmup_steps + int64_t(after) * inner_steps;
}

int64_t RoundSchedule::steps_in(uint64_t round) const {
  if (!warming_up(round)) return inner_steps;
  return std::min(warmup_inner_steps, warmup_steps - int64_t(round) * warmup_inner_steps);
}

uint64_t RoundSchedule::rounds_for(int64_t steps) const {
  if (steps <= 0) return 0;
  const int64_t w = warmup_rounds();
  if (steps <= warmup_steps) return uint64_t((steps + warmup_inner_steps - 1) / warmup_inner_steps);
  return uint64_t(w + (steps - warmup_steps + inner_steps - 1) / inner_steps);
}

std::string RoundSchedule::describe() const {
  if (warmup_steps == 0) return "H = " + std::to_string(inner_steps);
  return "H = " + std::to_string(warmup_inner_steps) + " (plain averaging) for " +
         std::to_string(warmup_steps) + " steps, then " + std::to_string(inner_steps);
}

}  // namespace murmur::gossip

// How a run's local steps fall into rounds: an optional warm-up of short rounds with plain averaging,
// then rounds of H steps with the outer (Nesterov) step. Synchronising often while the model moves
// fast and locally once it settles is post-local SGD (Lin et al., ICLR 2020); DiLoCo starts from a
// pretrained model for the same reason. Momentum with short rounds overshoots (docs/experiments/
// quality-gap.md, H = 2 and 8 with μ = 0.9), so warm-up rounds take no outer step: the peers average.
//
// Every driver asks the schedule (the round driver, `murmur node`'s diloco, the simulator, the lab), so
// a round number means the same steps everywhere, including for a peer that adopts a running swarm's
// round and continues its learning-rate schedule there.
#pragma once

#include <cstdint>
#include <string>

namespace murmur::gossip {

struct RoundSchedule {
  int64_t inner_steps = 50;        // H: local steps per round after the warm-up
  int64_t warmup_steps = 0;        // local steps in warm-up rounds at the start (0 = no warm-up)
  int64_t warmup_inner_steps = 8;  // local steps per warm-up round

  // Throws std::invalid_argument naming a bad field.
  void validate() const;
  int64_t warmup_rounds() const;             // rounds of the warm-up (its last may be shorter)
  bool warming_up(uint64_t round) const;     // round takes no outer step: the peers average
  int64_t first_step(uint64_t round) const;  // local steps done before `round` starts
  int64_t steps_in(uint64_t round) const;    // local steps of `round` (before any cap on the run)
  uint64_t rounds_for(int64_t steps) const;  // rounds that cover `steps` local steps (the last may be cut)
  std::string describe() const;              // "H = 32" or "H = 8 for 1024 steps, then 32"
};

}  // namespace murmur::gossip

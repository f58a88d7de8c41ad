// Test helpers for the round protocol on the lockstep network (netem/lockstep.h).
#pragma once

#include <vector>

#include "gossip/round_driver.h"
#include "netem/lockstep.h"

namespace murmur::test {

using RoundNet = netem::LockstepSwarm;
using Vec = std::vector<float>;
using netem::Edge;

inline gossip::PeerId pid(int i) { return netem::lockstep_id(i); }

// Plain local SGD in the driver (outer lr 1, no momentum), so tests of consensus see θ' unchanged, and
// the defences against hostile peers off (plain Metropolis–Hastings mixing, no norm prior, no strikes),
// so they see CHOCO's exact averaging from starting points far apart (docs/robustness.md has the
// defences' own tests).
inline gossip::RoundConfig plain_round(const char* codec, double gamma) {
  gossip::RoundConfig c;
  c.consensus.aggregation = gossip::Aggregation::mean;
  c.consensus.guard.max_relative = 0;
  c.strikes_to_cut = 0;
  c.consensus.codec = codec;
  c.consensus.gamma = gamma;
  c.outer_lr = 1.0;
  c.outer_momentum = 0.0;
  return c;
}

}  // namespace murmur::test

// The algorithm lab: P peers trained at equal tokens per peer by one of four algorithms, on an ideal
// network (every message arrives, nobody waits), so that what differs between runs is the algorithm:
//   allreduce  synchronous data parallelism, the peers' gradients averaged every step
//   diloco     H local steps, the pseudo-gradients averaged, one Nesterov outer step (DiLoCo)
//   gossip     the round protocol of real peers (gossip/round_driver.h on netem/lockstep.h) on random
//              neighbour links: outer step, compressed CHOCO consensus, Metropolis-Hastings mixing
//   local      no communication
// The baselines' bytes are those of a ring all-reduce of fp32 segments (gossip/ring_allreduce.h); gossip's
// are its messages' wire sizes. `murmur netem lab` runs it over run lengths and writes the report.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gossip/byzantine.h"
#include "gossip/round_driver.h"
#include "netem/sim_objective.h"

namespace murmur::netem {

struct LabConfig {
  std::string algo = "gossip";  // allreduce | diloco | gossip | local
  size_t peers = 4;
  int64_t rounds = 8;  // of round.schedule's steps each (allreduce: the steps between evaluations)
  // The schedule of rounds and the outer step (diloco and gossip); consensus, guard and strikes (gossip).
  gossip::RoundConfig round;
  int degree = 3;            // gossip: random links per peer (at most)
  int64_t relink_every = 0;  // gossip: a new random graph every N rounds; 0 = one graph
  int64_t eval_every = 1;    // rounds between evaluations (the last is always one)
  uint64_t seed = 1;
  // gossip: the last `byzantine` peers attack (gossip/byzantine.h); the points are the honest peers'.
  size_t byzantine = 0;
  gossip::AttackConfig attack;
};

// Throws std::invalid_argument naming a bad field.
void validate(const LabConfig& c);

struct LabPoint {
  int64_t round = 0;          // rounds done
  double loss = 0;            // mean over the (honest) peers of each one's own model's loss
  double loss_of_mean = 0;    // of the peers' average model
  double consensus = 0;       // max over peers of ‖θ_i − θ̄‖ / ‖θ̄‖
  double bytes_per_peer = 0;  // sent so far, mean over the peers
  uint64_t links_cut = 0;     // gossip: links a peer cut for strikes, so far
};

// Runs the algorithm; `progress` sees every evaluation as it is made. Returns them all.
std::vector<LabPoint> run_lab(SimObjective& obj, const LabConfig& c,
                              const std::function<void(const LabPoint&)>& progress = {});

// Bytes one peer sends, on average over the ring's ranks, in one all-reduce of n fp32 values among p
// peers: 2(p − 1) segments of about n/p values, each a RingSegment message (gossip/wire.h).
double ring_allreduce_bytes(size_t n, size_t p);

}  // namespace murmur::netem

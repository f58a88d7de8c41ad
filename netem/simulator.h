// `murmur netem simulate`: a discrete-event simulation of a whole swarm on one thread, for scales one
// machine cannot run as processes (100 to 10,000 peers). Each simulated peer runs the real sans-IO state
// machines, membership (gossip/membership.h) and CHOCO consensus with the real codecs
// (gossip/consensus.h), plus the outer optimiser, exactly as `murmur node` drives them; the network is a
// model of the scenario's links (bandwidth, delay, jitter, partitions, set_link) and compute is a model
// of each peer's speed. Instead of a language model the peers train an analytical objective, so a run of
// 1,000 peers x 1,000 rounds takes seconds. The model and its simplifications are in docs/netem.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gossip/membership.h"
#include "gossip/messages.h"
#include "gossip/round_driver.h"
#include "netem/scenario.h"
#include "netem/sim_objective.h"

namespace murmur::netem {

struct SimConfig {
  QuadraticObjective objective;  // what the peers train, unless make_objective is set
  // Builds another objective for the scenario's peers (node/peer/sim_model.h: the real model).
  std::function<std::unique_ptr<SimObjective>(size_t peers)> make_objective;
  int64_t rounds = 100;        // each peer leaves the swarm after this many rounds
  double step_s = 0.1;         // virtual compute time of one inner step at compute factor 1.0
  double duration_s = 0;       // virtual time limit; 0 = until every peer is done
  double sample_s = 0;         // virtual seconds between samples; 0 = one round's time (H · step_s)
  bool record_rounds = false;  // keep every peer's per-round record (SimResult::rounds)
  gossip::RoundConfig round;   // the round driver's settings and schedule, as `murmur node` takes them
  gossip::MembershipConfig membership;
  uint64_t seed = 1;
};

// The swarm at one virtual time, losses in the objective's terms (SimObjective::loss_name: relative
// suboptimality for the quadratic, 1 at the start and 0 at the optimum). Peers count from their start
// until they crash (finished peers stay, frozen).
struct SimSample {
  double time_s = 0;
  size_t peers = 0;
  double mean_round = 0;
  double loss_of_mean = 0;   // of the peers' average x̄
  double mean_loss = 0;      // mean over peers of the loss of x_i
  double consensus = 0;      // mean ‖x_i − x̄‖ / ‖x̄‖: the true disagreement
  double link_distance = 0;  // mean of Consensus::consensus_distance, what real peers log per round
  uint64_t train_bytes = 0;  // deltas and snapshots sent so far, all peers
  uint64_t membership_bytes = 0;
};

// One peer's round, as `murmur node` logs it: recorded at its mix.
struct SimRound {
  uint32_t peer = 0;
  uint64_t round = 0;
  double time_s = 0;
  double loss = 0;           // SimObjective::peer_loss after the round's local steps
  double link_distance = 0;  // Consensus::consensus_distance after the mix
};

struct SimPeerResult {
  std::string name;
  uint64_t rounds = 0;
  double loss = 0;  // of its x_i at the end (SimObjective::peer_loss)
  uint64_t bytes_sent = 0, bytes_received = 0;
  double wait_s = 0;
  bool crashed = false;  // killed and not restarted
};

struct SimResult {
  std::string loss_name;           // what the losses measure
  std::vector<SimSample> samples;  // the last one is taken at the end
  std::vector<SimRound> rounds;    // with SimConfig::record_rounds, in the order of the mixes
  std::vector<SimPeerResult> peers;
  double virtual_s = 0;
  uint64_t events = 0, messages = 0, dropped = 0;  // dropped: sent into a partition or to a dead peer
  // Membership verdicts: deaths declared of peers that were in fact running are false positives.
  uint64_t deaths = 0, false_deaths = 0, suspicions = 0;
};

// Throws std::invalid_argument for a bad config (naming the field).
void validate(const SimConfig& cfg);

// `progress` is called with every sample as it is taken.
SimResult simulate(const Scenario& s, const SimConfig& cfg,
                   const std::function<void(const SimSample&)>& progress = {});

}  // namespace murmur::netem

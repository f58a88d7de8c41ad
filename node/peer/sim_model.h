// The real language model as the simulator's objective (`murmur netem simulate --objective model`):
// each simulated peer trains its own replica with a CPU backend and the Trainer `murmur node` uses,
// built from the same [training] keys (node/run/options.h): same initialisation, data stream per peer
// index, LR schedule and AdamW. So a small scenario can be simulated and run as processes, and the
// two compared round by round (docs/netem.md). It costs what training costs: a few peers, a small model.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "netem/sim_objective.h"
#include "node/peer/args.h"

namespace murmur::peer {

// The PeerArgs a scenario's [training] table gives every peer (its keys are `murmur node` flags; the
// runner's own base_tokens_per_s is skipped). Throws std::invalid_argument naming the bad key.
// The [training] keys as `murmur node` flags, parsed and range-checked (no data needed).
PeerArgs parse_training_table(const std::vector<std::pair<std::string, std::string>>& training,
                              const std::string& source);
PeerArgs peer_args_from_training(const std::vector<std::pair<std::string, std::string>>& training,
                                 const std::string& source);

// Peer i trains with peer index i. peer_loss is the mean train loss of the peer's latest round (what
// `murmur node` logs per round); loss is the validation loss over --eval-windows windows.
std::unique_ptr<netem::SimObjective> make_model_objective(const PeerArgs& args, size_t peers);

}  // namespace murmur::peer

// A peer's training thread: H local AdamW steps per round, then the round's
// communication for the chosen algorithm:
//   gossip     outer Nesterov step, CHOCO consensus with the neighbour links
//   local      no communication (the lower baseline)
//   allreduce  gradients averaged over a ring of all peers every step
//   diloco     pseudo-gradients averaged over the ring every H steps, one
//              global Nesterov outer step (DiLoCo as published)
// It talks to the network thread only through the PeerMailbox.
#pragma once

#include <nlohmann/json.hpp>

#include "gossip/messages.h"
#include "node/net/metrics.h"
#include "node/peer/args.h"
#include "node/peer/mailbox.h"
#include "node/run/jsonl_log.h"

namespace murmur::peer {

// Trains until --steps, --max-seconds or an interrupt; writes checkpoints and
// returns the run's summary (also written to OUT/summary.json by the caller). Training rejections,
// links cut and rollbacks are counted in `metrics` per peer and kind.
nlohmann::json run_peer_training(const PeerArgs& args, const gossip::PeerId& self, PeerMailbox& mailbox,
                                 run::JsonlLog& log, net::MetricsRegistry& metrics);

}  // namespace murmur::peer

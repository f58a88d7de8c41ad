// A joiner needs only a join address, its keys and its data (issue 19): the run's settings it did not
// set itself (docs/membership.md, "Runs") it takes from the peer it joins through, which answers a
// RunQuery with its RunIdentity (RunInfo).
#pragma once

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gossip/run_identity.h"
#include "node/net/transport.h"
#include "node/peer/args.h"

namespace murmur::peer {

// The flags that set a field of the RunIdentity.
extern const std::vector<std::string> kRunFlags;

// The identity of the run the peer at `join_address` belongs to, asked with a RunQuery from a transport
// of its own (config: this peer's keys and admission, any free local port); nullopt if it did not
// answer within `timeout` (asked again every second).
std::optional<gossip::RunIdentity> ask_run_identity(net::TransportConfig config,
                                                    const std::string& join_address,
                                                    std::chrono::milliseconds timeout);

// Sets in `a` every setting of `run` whose flag is not in `given` (the flags the user set, on the
// command line or in --config); returns what changed, as run_differences names it ("" if nothing).
// The vocabulary comes from the data and is never taken: a difference there still refuses the join.
std::string adopt_run_settings(PeerArgs& a, const gossip::RunIdentity& run,
                               const std::set<std::string>& given);

}  // namespace murmur::peer

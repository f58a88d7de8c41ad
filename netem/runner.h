// The plan of `murmur netem run` that needs no processes: a scenario's [training] table as the peers'
// `murmur node --config` file, and each peer's `--dial-via` map through its relay links. The command
// (node/cli/cmd_netem_run.cpp) spawns the peers and drives the timeline.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "netem/scenario.h"

namespace murmur::netem {

// `murmur node` flags that the runner sets per peer: a scenario's [training] may not give them.
const std::set<std::string>& runner_owned_flags();

struct RunConfig {
  std::string toml;              // [training] minus the runner's own keys; keys are `murmur node` flags
  std::string algo = "gossip";   // as the peers will see it (the node's default when absent)
  double base_tokens_per_s = 0;  // training.base_tokens_per_s: compute factor 1.0 = this; 0 = unthrottled
  bool has_expect_peers = false;
};

// Validates every [training] key against `node_flags` (long names of `murmur node`, without "--") and
// throws std::invalid_argument naming the key ("wan.toml: [training] H: not a `murmur node` flag ...").
// A relative `data` path is made absolute (against the current directory) so the file stands alone.
RunConfig training_run_config(const Scenario& s, const std::set<std::string>& node_flags,
                              const std::string& source_name);

std::string loopback_address(uint16_t port);  // "tcp://127.0.0.1:PORT"

// The `--dial-via ADDR=VIA` values of each peer: routes[k] (from layout_routes) goes through the relay
// link listening on relay_ports[k]; peer j listens on listen_ports[j]. Result[i] lists peer i's dials.
std::vector<std::vector<std::string>> dial_via_flags(const std::vector<Route>& routes,
                                                     const std::vector<uint16_t>& listen_ports,
                                                     const std::vector<uint16_t>& relay_ports);

// A set_link event applied to direction `dir` of route r (which it matches): the event's up is its first
// site -> the other, a route's up is dialer -> listener. Returns `current` with the event's fields
// replaced, or nothing when the event's direction leaves this one alone.
std::optional<LinkProfile> set_link_profile(const ScenarioEvent& e, const Route& r, Direction dir,
                                            const LinkProfile& current);

// A peer's compute throttle: its factor times the base rate (0 when the base is 0: unthrottled).
double tokens_per_s_limit(const Scenario& s, size_t peer, double base_tokens_per_s);

}  // namespace murmur::netem

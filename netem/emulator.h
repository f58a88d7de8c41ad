// How `murmur netem run` realises a scenario's links: the user-space relay (default, netem/relay.h) or
// the kernel's `tc netem` in network namespaces (netem/tc_emulator.h). The runner spawns the peers and
// executes the timeline through this interface, so it never knows which one shapes the bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "netem/relay.h"
#include "netem/scenario.h"

namespace murmur::netem {

class LinkEmulator {
 public:
  virtual ~LinkEmulator() = default;
  // The host peer i listens on and is joined at ("127.0.0.1", or its namespace's address).
  virtual std::string host(size_t peer) const = 0;
  // What goes before `murmur node ...` to start peer i (empty, or `ip netns exec NS`).
  virtual std::vector<std::string> command_prefix(size_t peer) const = 0;
  // Extra `murmur node` flags of peer i (the relay's --dial-via routes).
  virtual std::vector<std::string> peer_flags(size_t peer) const = 0;
  // Route k of layout_routes(): partition both ways, heal, or a direction's new profile.
  virtual void partition(size_t route, PartitionMode mode) = 0;
  virtual void heal(size_t route) = 0;
  virtual void set_profile(size_t route, Direction dir, const LinkProfile& profile) = 0;
  virtual LinkStats stats(size_t route) = 0;
  // A site's shared uplink (up) or downlink (down): its new profile. Only sites that declared it.
  virtual void set_site(size_t site, Direction dir, const LinkProfile& profile) = 0;
};

// One relay link per route, each in front of its listener's port on 127.0.0.1, and a shared relay link
// per declared site uplink and downlink that the routes between sites cross. Throws
// std::invalid_argument when a route's profile needs packets (loss, duplicate, reorder).
std::unique_ptr<LinkEmulator> make_relay_emulator(const std::vector<Route>& routes,
                                                  const std::vector<uint16_t>& listen_ports,
                                                  const std::vector<ScenarioSite>& sites = {});

}  // namespace murmur::netem

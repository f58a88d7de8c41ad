// The kernel backend of `murmur netem run --backend tc`: every peer in its own network namespace, wired
// by a veth pair to a bridge in a hub namespace (nothing touches the host's own interfaces), and on each
// peer's egress an htb root with one class per destination peer whose `netem` qdisc applies the
// profile between the two sites: delay, jitter, rate, and the packet-level loss, duplication and
// reordering the user-space relay cannot emulate. Needs root (CAP_NET_ADMIN), iproute2 and a kernel with
// sch_netem; where one is missing it fails with one line saying which, and leaves nothing behind.
//
// The planning functions are pure (names, addresses, tc arguments), so tests check them without root.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "netem/emulator.h"

namespace murmur::netem {

using Argv = std::vector<std::string>;

struct TcTopology {
  std::string hub;                     // the hub namespace holding bridge br0
  std::vector<std::string> peer_ns;    // per peer
  std::vector<std::string> peer_addr;  // per peer, on 10.201.0.0/16
};

// Names carry `tag` (e.g. the runner's pid) so concurrent runs do not collide: "mm<tag>-h", "mm<tag>-<i>".
TcTopology tc_topology(size_t peers, uint32_t tag);

// netem's options for a profile, e.g. {"delay", "40000us", "2000us", "rate", "200000000bit", "loss",
// "1%", "limit", "..."}; the queue limit holds twice the bandwidth-delay product in 1500-byte packets.
// Throws std::invalid_argument for reorder without delay (netem reorders by letting packets skip it).
Argv netem_options(const LinkProfile& p);

// The profile of each directed pair of peers: pair[i][j] shapes i -> j (from route i -> j's up).
std::vector<std::vector<LinkProfile>> pair_profiles(const std::vector<Route>& routes, size_t peers);

// The commands that build the namespaces, the bridge, each peer's veth and address, and each peer's
// qdiscs and filters, in order.
std::vector<Argv> tc_setup_commands(const TcTopology& t, const std::vector<std::vector<LinkProfile>>& pair);

// Replaces the netem qdisc shaping `from` -> `to` (a partition is a profile with loss = 100 %).
Argv tc_change_command(const TcTopology& t, size_t from, size_t to, const LinkProfile& p);

// Throws std::invalid_argument, starting "--backend tc:", for what this backend cannot build: sites'
// shared uplinks and downlinks (each peer shapes its own egress here; a site's shared link would need
// one more qdisc tree that all its peers' traffic crosses).
void check_tc_scenario(const Scenario& s);

// Builds the topology (after checking root, iproute2 and sch_netem) and tears it down when destroyed.
std::unique_ptr<LinkEmulator> make_tc_emulator(const std::vector<Route>& routes, size_t peers);

}  // namespace murmur::netem

// Scenario files (TOML, docs/netem.md): sites, their peers and compute speeds, link profiles within and
// between sites, the training config passed through to the peers, and a timeline of events. Parsing
// validates everything and throws std::invalid_argument as "FILE:LINE: FIELD: problem".
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "netem/relay.h"
#include "netem/units.h"

namespace murmur::netem {

// Bounds of a scenario: the simulator takes swarms this large; `murmur netem run` starts at most
// kMaxRunPeers processes.
inline constexpr size_t kMaxScenarioPeers = 10000;  // per site
inline constexpr size_t kMaxRunPeers = 128;

struct ScenarioPeer {
  std::string name;      // "<site>-<i>", i from 0
  size_t site = 0;       // index into Scenario::sites
  double compute = 1.0;  // tokens/s throttle factor, (0, 100]
  bool starts = true;    // false for peers that a `join` event starts
  // Byzantine peers (experiments, gossip/byzantine.h): the attack's name and strength; empty = honest.
  std::string attack;
  double attack_scale = 0;
};

struct ScenarioSite {
  std::string name;
  std::vector<size_t> peers;  // indices into Scenario::peers
  LinkShape local;            // between two peers of this site (up: dialer -> listener)
  // The site's WAN access, shared by all its peers' traffic to other sites (bandwidth and delay): what
  // leaves the site crosses its uplink, then the pair's profile, then the other site's downlink.
  std::optional<LinkProfile> uplink, downlink;
};

// set_site: the fields given replace those of a site's uplink or downlink.
struct WanChange {
  std::optional<double> bandwidth_bps;
  std::optional<Nanos> delay;
  LinkProfile applied_to(LinkProfile p) const {
    if (bandwidth_bps) p.rate_bps = *bandwidth_bps;
    if (delay) p.delay = *delay;
    return p;
  }
};

// Between two different sites; shape.up is a -> b, shape.down is b -> a.
struct SiteLink {
  size_t a = 0, b = 0;
  LinkShape shape;
};

enum class EventKind { kill, restart, join, partition, heal, set_link, set_site };

struct ScenarioEvent {
  Nanos at{0};
  EventKind kind = EventKind::kill;
  std::optional<size_t> peer;  // kill, restart, join
  // partition, heal, set_link: two sites (the same one twice: within the site), or one site: all its
  // links to other sites. set_site: its one site.
  std::vector<size_t> sites;
  PartitionMode mode = PartitionMode::blackhole;  // partition
  // set_link: the fields given replace those of the profile; `direction` "both" (default), "up" (first
  // site -> second) or "down".
  std::optional<double> bandwidth_bps;
  std::optional<Nanos> delay, jitter;
  bool up = true, down = true;
  std::optional<WanChange> uplink, downlink;  // set_site
  int line = 0;                               // in the scenario file
};

struct Scenario {
  std::string name, description;
  Nanos duration{0};  // how long the runner lets it go
  std::vector<ScenarioSite> sites;
  std::vector<ScenarioPeer> peers;
  std::vector<SiteLink> links;  // declared ones; others use default_link
  LinkShape default_link;
  // [training], passed through: scalar keys in file order with their values as text (strings unquoted),
  // and the whole table as TOML text (for `--config`).
  std::vector<std::pair<std::string, std::string>> training;
  std::string training_toml;
  std::vector<ScenarioEvent> events;  // sorted by time (stable)

  // The shape of traffic from a peer of site `from` to a peer of site `to` (up: from -> to).
  LinkShape shape_between(size_t from, size_t to) const;
  // Whether a site declares an uplink or downlink.
  bool shares_wan() const;
};

Scenario parse_scenario(const std::string& toml_text, const std::string& source_name = "scenario");
Scenario load_scenario(const std::filesystem::path& file);

// The directed link a dial goes through: `dialer` connects to `listener` via a relay link shaped
// `shape` (up: dialer -> listener).
struct Route {
  size_t dialer = 0, listener = 0;  // peer indices
  size_t dialer_site = 0, listener_site = 0;
  LinkShape shape;
};

// One route per ordered pair of distinct peers: every peer may dial every other, each dial through its own
// relay link, so partitions and bandwidth changes can target a pair of sites.
std::vector<Route> layout_routes(const Scenario& s);

// Whether an event naming `sites` (partition, heal, set_link) applies to route r.
bool route_matches(const Route& r, const std::vector<size_t>& sites);

}  // namespace murmur::netem

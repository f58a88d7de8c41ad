// The links of `murmur netem simulate` (netem/simulator.h), apart so tests can time messages exactly:
// when a message sent now reaches its receiver, given the scenario's profiles between sites, its sites'
// shared uplinks and downlinks, partitions and the link events of its timeline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "gossip/id_table.h"
#include "model/rng.h"
#include "netem/scenario.h"

namespace murmur::netem {

class SimLinks {
 public:
  // `rng` draws the jitter: the simulator's own stream, so a run depends on its seed only.
  SimLinks(const Scenario& s, SplitMix64& rng);

  // When `bytes` sent at `now` by peer `from` reach peer `to` (virtual seconds), or nothing when a
  // partition drops them. Control messages (membership) leave at once: small, on their own
  // connection. Bulk messages (training) queue behind each other on the pair's bandwidth. Between
  // sites a message also crosses its sender site's uplink and its receiver site's downlink where the
  // scenario declares them: FIFOs shared by all the bulk traffic leaving (entering) the site. Each link
  // carries it at its own rate from when it is free (links pass bytes on as they come, as the relay
  // does), it departs when the last one has, and their delays add. Then, as netem/shaper.h: release =
  // departure + delays + U(-jitter, +jitter), never before the previous release of its stream.
  std::optional<double> send(double now, size_t from, size_t to, size_t bytes, bool bulk);

  void apply(const ScenarioEvent& e);  // partition, heal, set_link, set_site; other events change nothing
  // When the bulk messages `from` has sent so far arrive: at least `now`.
  double last_bulk_from(size_t from, double now) const;
  // Drops the state of pairs with nothing in flight at `now`: such a pair acts as a fresh one.
  void forget_idle(double now);

 private:
  struct PairQueue {  // one directed peer pair: its bulk stream and the release times that keep FIFO order
    double bulk_free = 0, last_bulk = 0, last_control = 0;
  };
  struct SiteQueue {  // a site's uplink or downlink, if the scenario declares it
    std::optional<LinkProfile> profile;
    double free = 0;  // when its bulk traffic so far has passed
  };

  SplitMix64& rng_;
  std::vector<size_t> site_;                     // per peer
  std::vector<std::vector<LinkProfile>> shape_;  // [from site][to site]
  std::vector<std::vector<bool>> blocked_;
  std::vector<SiteQueue> uplink_, downlink_;  // per site
  // By from << 32 | to; only pairs with a message in flight: the others' entries could change nothing
  // (see forget_idle), and this way the table stays in cache.
  gossip::FlatTable<uint64_t, PairQueue, gossip::U64Hasher> pairs_;
  std::vector<uint64_t> idle_;
};

}  // namespace murmur::netem

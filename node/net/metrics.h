// Labelled counters for /metrics (Prometheus text format), e.g.
//   murmur_transport_dropped_total{peer="a1b2c3d4",reason="oversize"} 3
// Every label set ever counted stays a series until the process exits, so label
// values must come from bounded sets: fixed reason strings, and peers through
// MetricsRegistry::peer_label, which names only the peers of the allow-list (a
// stranger cannot grow the set: every other key is "unknown").
//
// Threading: any thread may count; the /metrics server's thread renders.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "gossip/messages.h"

namespace murmur::net {

// The label value of every peer that is not named.
inline constexpr const char* kUnknownPeer = "unknown";

// One counter family: a name, its help and label names, and a value per label set.
class CounterFamily {
 public:
  CounterFamily(std::string name, std::string help, std::vector<std::string> label_names);
  // Adds n to the counter of `values`, one per label name (std::invalid_argument otherwise).
  void add(const std::vector<std::string>& values, uint64_t n = 1);
  // Sets it to `total`: mirrors a count kept elsewhere, which must only grow.
  void set(const std::vector<std::string>& values, uint64_t total);
  uint64_t value(const std::vector<std::string>& values) const;  // 0 if never counted
  const std::vector<std::string>& label_names() const { return label_names_; }
  // HELP, TYPE and one sample per label set, in label order; a family without labels
  // shows 0 before its first count.
  void render(std::string& out) const;

 private:
  void check(const std::vector<std::string>& values) const;

  const std::string name_, help_;
  const std::vector<std::string> label_names_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, uint64_t> values_;
};

class MetricsRegistry {
 public:
  // `named_peers` (the allow-list) get their short id as label value; everyone else is kUnknownPeer.
  explicit MetricsRegistry(std::set<gossip::PeerId> named_peers = {});
  // The counter family `name`, made on first use. The reference stays valid for the
  // registry's life; a later call with other label names throws std::logic_error.
  CounterFamily& counters(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names);
  std::string peer_label(const gossip::PeerId& id) const;
  // Every family, by name.
  std::string render() const;

 private:
  const std::set<gossip::PeerId> named_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<CounterFamily>> families_;
};

}  // namespace murmur::net

#include <optional>
#include <stdexcept>

#include "netem/emulator.h"
#include "netem/runner.h"

namespace murmur::netem {
namespace {

class RelayEmulator final : public LinkEmulator {
 public:
  RelayEmulator(const std::vector<Route>& routes, const std::vector<uint16_t>& listen_ports,
                const std::vector<ScenarioSite>& sites) {
    for (const ScenarioSite& site : sites) {
      uplink_.push_back(site.uplink ? std::optional(relay_.add_shared(*site.uplink)) : std::nullopt);
      downlink_.push_back(site.downlink ? std::optional(relay_.add_shared(*site.downlink)) : std::nullopt);
    }
    // Between sites, each direction crosses its sender's uplink, then its receiver's downlink.
    const auto via = [&](size_t from, size_t to) {
      std::vector<SharedId> out;
      if (from == to || sites.empty()) return out;
      if (uplink_.at(from)) out.push_back(*uplink_[from]);
      if (downlink_.at(to)) out.push_back(*downlink_[to]);
      return out;
    };
    std::vector<uint16_t> relay_ports;
    for (size_t k = 0; k < routes.size(); ++k) {
      const Route& r = routes[k];
      for (const LinkProfile* p : {&r.shape.up, &r.shape.down}) {
        if (p->impairs_packets())
          throw std::invalid_argument(
              "loss, duplicate and reorder need --backend tc: the relay forwards TCP streams, which have no "
              "packets to drop");
      }
      links_.push_back(relay_.add_link({.listen = {"127.0.0.1", 0},
                                        .target = {"127.0.0.1", listen_ports.at(r.listener)},
                                        .shape = r.shape,
                                        .seed = k + 1,
                                        .up_via = via(r.dialer_site, r.listener_site),
                                        .down_via = via(r.listener_site, r.dialer_site)}));
      relay_ports.push_back(relay_.port(links_.back()));
    }
    dial_via_ = dial_via_flags(routes, listen_ports, relay_ports);
  }

  std::string host(size_t) const override { return "127.0.0.1"; }
  std::vector<std::string> command_prefix(size_t) const override { return {}; }
  std::vector<std::string> peer_flags(size_t peer) const override {
    std::vector<std::string> out;
    for (const std::string& d : dial_via_.at(peer)) out.insert(out.end(), {"--dial-via", d});
    return out;
  }
  void partition(size_t route, PartitionMode mode) override { relay_.partition(links_.at(route), mode); }
  void heal(size_t route) override { relay_.heal(links_.at(route)); }
  void set_profile(size_t route, Direction dir, const LinkProfile& profile) override {
    relay_.set_profile(links_.at(route), dir, profile);
  }
  LinkStats stats(size_t route) override { return relay_.stats(links_.at(route)); }
  void set_site(size_t site, Direction dir, const LinkProfile& profile) override {
    const std::optional<SharedId> id = (dir == Direction::up ? uplink_ : downlink_).at(site);
    if (!id) throw std::invalid_argument("site " + std::to_string(site) + " has no such shared link");
    relay_.set_shared_profile(*id, profile);
  }

 private:
  Relay relay_;
  std::vector<std::optional<SharedId>> uplink_, downlink_;  // per site
  std::vector<LinkId> links_;
  std::vector<std::vector<std::string>> dial_via_;
};

}  // namespace

std::unique_ptr<LinkEmulator> make_relay_emulator(const std::vector<Route>& routes,
                                                  const std::vector<uint16_t>& listen_ports,
                                                  const std::vector<ScenarioSite>& sites) {
  return std::make_unique<RelayEmulator>(routes, listen_ports, sites);
}

}  // namespace murmur::netem

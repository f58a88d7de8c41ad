#include "netem/runner.h"

#include <toml++/toml.h>

#include <charconv>
#include <filesystem>
#include <sstream>
#include <stdexcept>

namespace murmur::netem {

namespace {

// The shortest text that reads back as the same double, still a TOML float ("0.7", not 0.69999999999999996).
std::string shortest(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string t(buf, r.ptr);
  if (t.find_first_of(".eEn") == std::string::npos) t += ".0";  // n: inf, nan
  return t;
}

}  // namespace

const std::set<std::string>& runner_owned_flags() {
  static const std::set<std::string> owned = {"config", "keys",       "listen", "advertise",
                                              "join",   "dial-via",   "allow",  "open",
                                              "out",    "peer-index", "resume", "tokens-per-s-limit"};
  return owned;
}

RunConfig training_run_config(const Scenario& s, const std::set<std::string>& node_flags,
                              const std::string& source_name) {
  const toml::table in = toml::parse(s.training_toml);
  std::ostringstream out;
  out << "# murmur netem run: [training] of " << source_name << " (keys are `murmur node` flags)\n";
  RunConfig rc;
  for (const auto& [key, text] : s.training) {
    const std::string where = source_name + ": [training] " + key + ": ";
    if (key == "base_tokens_per_s") {
      const std::optional<double> v = in[key].value<double>();
      if (!v || !(*v >= 0 && *v <= 1e12))
        throw std::invalid_argument(where +
                                    "expected tokens/s for compute factor 1.0, 0 .. 1e12 (0 = unthrottled)");
      rc.base_tokens_per_s = *v;
      continue;
    }
    if (runner_owned_flags().count(key))
      throw std::invalid_argument(where + "set by the runner for each peer; remove it from the scenario");
    if (!node_flags.count(key)) {
      std::string dashed = key;
      for (char& c : dashed) c = c == '_' ? '-' : c;
      const std::string hint = key == "H" ? " (the local steps per round are `inner-steps`)"
                               : node_flags.count(dashed)
                                   ? " (did you mean `" + dashed + "`?)"
                                   : " (keys are `murmur node` flag names: see murmur node --help)";
      throw std::invalid_argument(where + "not a `murmur node` flag" + hint);
    }
    if (key == "algo") rc.algo = text;
    if (key == "expect-peers") rc.has_expect_peers = true;
    out << key << " = ";
    const toml::node& v = *in.get(key);
    if (v.is_string()) {
      const bool relative = key == "data" && !std::filesystem::path(text).is_absolute();
      out << toml::value<std::string>(relative ? std::filesystem::absolute(text).lexically_normal().string()
                                               : text);
    } else if (v.is_floating_point()) {
      out << shortest(*v.value<double>());
    } else {
      out << text;  // an integer or boolean
    }
    out << "\n";
  }
  rc.toml = out.str();
  return rc;
}

std::string loopback_address(uint16_t port) { return "tcp://127.0.0.1:" + std::to_string(port); }

std::vector<std::vector<std::string>> dial_via_flags(const std::vector<Route>& routes,
                                                     const std::vector<uint16_t>& listen_ports,
                                                     const std::vector<uint16_t>& relay_ports) {
  if (relay_ports.size() != routes.size())
    throw std::invalid_argument("dial_via_flags: one relay port per route");
  std::vector<std::vector<std::string>> out(listen_ports.size());
  for (size_t k = 0; k < routes.size(); ++k) {
    const Route& r = routes[k];
    if (r.dialer >= listen_ports.size() || r.listener >= listen_ports.size())
      throw std::invalid_argument("dial_via_flags: route names a peer without a port");
    out[r.dialer].push_back(loopback_address(listen_ports[r.listener]) + "=" +
                            loopback_address(relay_ports[k]));
  }
  return out;
}

std::optional<LinkProfile> set_link_profile(const ScenarioEvent& e, const Route& r, Direction dir,
                                            const LinkProfile& current) {
  const bool forward = !e.sites.empty() && r.dialer_site == e.sites[0];
  const bool applies = (dir == Direction::up) == forward ? e.up : e.down;
  if (!applies) return std::nullopt;
  LinkProfile p = current;
  if (e.bandwidth_bps) p.rate_bps = *e.bandwidth_bps;
  if (e.delay) p.delay = *e.delay;
  if (e.jitter) p.jitter = *e.jitter;
  return p;
}

double tokens_per_s_limit(const Scenario& s, size_t peer, double base_tokens_per_s) {
  return s.peers.at(peer).compute * base_tokens_per_s;
}

}  // namespace murmur::netem

#include "netem/scenario.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <tuple>

#include "gossip/byzantine.h"

namespace murmur::netem {
namespace {

// Field access with errors of the form "FILE:LINE: FIELD: problem".
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const toml::node* n, const std::string& field, const std::string& msg) const {
    const int line = n ? int(n->source().begin.line) : 0;
    throw std::invalid_argument(source_ + (line > 0 ? ":" + std::to_string(line) : "") + ": " + field + ": " +
                                msg);
  }

  // Unknown keys are errors: a typo must not silently fall back to a default.
  void only(const toml::table& t, const std::string& path,
            std::initializer_list<std::string_view> keys) const {
    for (const auto& [k, v] : t) {
      if (std::find(keys.begin(), keys.end(), k.str()) == keys.end()) {
        fail(&v, join(path, k.str()), "unknown field");
      }
    }
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  const toml::table& table(const toml::node& n, const std::string& field) const {
    if (!n.is_table()) fail(&n, field, "expected a table");
    return *n.as_table();
  }

  std::optional<std::string> string(const toml::table& t, const std::string& path,
                                    std::string_view key) const {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) fail(n, join(path, key), "expected a string");
    return *n->value<std::string>();
  }

  std::string required_string(const toml::table& t, const std::string& path, std::string_view key) const {
    auto s = string(t, path, key);
    if (!s) fail(&t, join(path, key), "missing");
    return *s;
  }

  // Runs parse(text) on a string field, turning its std::invalid_argument into a located error.
  template <class F>
  auto parsed(const toml::table& t, const std::string& path, std::string_view key, F parse) const
      -> std::optional<decltype(parse(std::string()))> {
    auto s = string(t, path, key);
    if (!s) return std::nullopt;
    try {
      return parse(*s);
    } catch (const std::invalid_argument& e) {
      fail(t.get(key), join(path, key), e.what());
    }
  }

  double number(const toml::node& n, const std::string& field, double lo, double hi) const {
    if (!n.is_number()) fail(&n, field, "expected a number");
    const double v = *n.value<double>();
    if (!(v > lo && v <= hi)) fail(&n, field, "must be in (" + fmt(lo) + ", " + fmt(hi) + "]");
    return v;
  }

  size_t site_index(const toml::node& n, const std::string& field,
                    const std::vector<ScenarioSite>& sites) const {
    if (!n.is_string()) fail(&n, field, "expected a site name");
    const std::string name = *n.value<std::string>();
    for (size_t i = 0; i < sites.size(); ++i) {
      if (sites[i].name == name) return i;
    }
    fail(&n, field, "no site named \"" + name + "\"");
  }

  // "sites = [a, b]" (or [a]) of an event or link.
  std::vector<size_t> sites(const toml::table& t, const std::string& path,
                            const std::vector<ScenarioSite>& all, size_t min, size_t max) const {
    const std::string field = join(path, "sites");
    const toml::node* n = t.get("sites");
    if (!n) fail(&t, field, "missing");
    const toml::array* arr = n->as_array();
    if (!arr || arr->size() < min || arr->size() > max) {
      fail(n, field,
           "expected an array of " + std::to_string(min) + (min == max ? "" : " or " + std::to_string(max)) +
               " site names");
    }
    std::vector<size_t> out;
    for (size_t i = 0; i < arr->size(); ++i) out.push_back(site_index(*arr->get(i), field, all));
    return out;
  }

  // bandwidth, delay, jitter, burst over `base`.
  LinkProfile profile(const toml::table& t, const std::string& path, LinkProfile base) const {
    if (auto v = parsed(t, path, "bandwidth", [](const std::string& s) { return parse_bandwidth(s); }))
      base.rate_bps = *v;
    if (auto v = parsed(t, path, "delay",
                        [](const std::string& s) { return parse_duration(s, std::chrono::seconds(60)); }))
      base.delay = *v;
    if (auto v = parsed(t, path, "jitter",
                        [](const std::string& s) { return parse_duration(s, std::chrono::seconds(60)); }))
      base.jitter = *v;
    if (auto v = parsed(t, path, "burst", [](const std::string& s) { return parse_bytes(s); }))
      base.burst_bytes = *v;
    const auto percent = [](const std::string& s) { return parse_percent(s); };
    if (auto v = parsed(t, path, "loss", percent)) base.loss = *v;
    if (auto v = parsed(t, path, "duplicate", percent)) base.duplicate = *v;
    if (auto v = parsed(t, path, "reorder", percent)) base.reorder = *v;
    return base;
  }

  // A link table: the common fields, then optional `up` / `down` tables overriding them per direction.
  LinkShape shape(const toml::table& t, const std::string& path,
                  std::initializer_list<std::string_view> extra) const {
    std::vector<std::string_view> keys{"bandwidth", "delay",   "jitter", "burst", "loss",
                                       "duplicate", "reorder", "up",     "down"};
    keys.insert(keys.end(), extra.begin(), extra.end());
    for (const auto& [k, v] : t) {
      if (std::find(keys.begin(), keys.end(), k.str()) == keys.end())
        fail(&v, join(path, k.str()), "unknown field");
    }
    const LinkProfile both = profile(t, path, {});
    LinkShape s{both, both};
    for (auto [key, dir] : {std::pair{"up", &s.up}, std::pair{"down", &s.down}}) {
      if (const toml::node* n = t.get(key)) {
        const toml::table& d = table(*n, join(path, key));
        only(d, join(path, key), {"bandwidth", "delay", "jitter", "burst", "loss", "duplicate", "reorder"});
        *dir = profile(d, join(path, key), both);
      }
    }
    return s;
  }

  // A site's uplink or downlink: "20mbit", or { bandwidth = "20mbit", delay = "5ms" }. A declaration
  // needs the bandwidth (a shared link with none shares nothing); a set_site change needs one field.
  WanChange wan(const toml::table& t, const std::string& path, std::string_view key, bool declaration) const {
    const toml::node* n = t.get(key);
    const std::string field = join(path, key);
    WanChange c;
    if (n->is_string()) {
      c.bandwidth_bps = parsed(t, path, key, [](const std::string& v) { return parse_bandwidth(v); });
    } else {
      const toml::table& w = table(*n, field);
      only(w, field, {"bandwidth", "delay"});
      c.bandwidth_bps =
          parsed(w, field, "bandwidth", [](const std::string& v) { return parse_bandwidth(v); });
      c.delay = parsed(w, field, "delay",
                       [](const std::string& v) { return parse_duration(v, std::chrono::seconds(60)); });
      if (!c.bandwidth_bps && (declaration || !c.delay)) fail(n, field + ".bandwidth", "missing");
    }
    if (c.bandwidth_bps && std::isinf(*c.bandwidth_bps))
      fail(n, field, "must be a finite bandwidth (leave " + std::string(key) + " out for none)");
    return c;
  }

 private:
  static std::string fmt(double v) {
    std::ostringstream o;
    o << v;
    return o.str();
  }
  std::string source_;
};

const toml::array* array_of_tables(const Reader& r, const toml::table& root, std::string_view key) {
  const toml::node* n = root.get(key);
  if (!n) return nullptr;
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables())
    r.fail(n, std::string(key), "expected [[" + std::string(key) + "]] tables");
  return arr;
}

void parse_sites(const Reader& r, const toml::table& root, Scenario& s) {
  const toml::array* arr = array_of_tables(r, root, "site");
  if (!arr || arr->empty()) r.fail(&root, "site", "at least one [[site]] is required");
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table& t = *arr->get(i)->as_table();
    const std::string path = "site[" + std::to_string(i) + "]";
    r.only(t, path, {"name", "peers", "compute", "link", "uplink", "downlink", "byzantine"});
    ScenarioSite site;
    site.name = r.required_string(t, path, "name");
    if (site.name.empty() || site.name.find_first_of(" \t*") != std::string::npos) {
      r.fail(t.get("name"), path + ".name", "must be non-empty without spaces");
    }
    for (const ScenarioSite& other : s.sites) {
      if (other.name == site.name)
        r.fail(t.get("name"), path + ".name", "duplicate site \"" + site.name + "\"");
    }
    const toml::node* peers = t.get("peers");
    if (!peers) r.fail(&t, path + ".peers", "missing");
    const size_t n = size_t(r.number(*peers, path + ".peers", 0, kMaxScenarioPeers));
    if (double(n) != *peers->value<double>()) r.fail(peers, path + ".peers", "must be a whole number");
    std::vector<double> compute(n, 1.0);
    if (const toml::node* c = t.get("compute")) {
      const std::string field = path + ".compute";
      if (const toml::array* ca = c->as_array()) {
        if (ca->size() != n) r.fail(c, field, "expected one value per peer (" + std::to_string(n) + ")");
        for (size_t k = 0; k < n; ++k) compute[k] = r.number(*ca->get(k), field, 0, 100);
      } else {
        std::fill(compute.begin(), compute.end(), r.number(*c, field, 0, 100));
      }
    }
    if (const toml::node* l = t.get("link"))
      site.local = r.shape(r.table(*l, path + ".link"), path + ".link", {});
    if (t.get("uplink")) site.uplink = r.wan(t, path, "uplink", true).applied_to({});
    if (t.get("downlink")) site.downlink = r.wan(t, path, "downlink", true).applied_to({});
    for (size_t k = 0; k < n; ++k) {
      site.peers.push_back(s.peers.size());
      s.peers.push_back({site.name + "-" + std::to_string(k), s.sites.size(), compute[k], true, {}, 0});
    }
    // byzantine = { peers = N, attack = "...", scale = S }: the site's last N peers attack.
    if (const toml::node* b = t.get("byzantine")) {
      const std::string field = path + ".byzantine";
      const toml::table& bt = r.table(*b, field);
      r.only(bt, field, {"peers", "attack", "scale"});
      const toml::node* count = bt.get("peers");
      if (!count) r.fail(&bt, field + ".peers", "missing");
      const size_t m = size_t(r.number(*count, field + ".peers", 0, double(n)));
      if (double(m) != *count->value<double>()) r.fail(count, field + ".peers", "must be a whole number");
      const std::string attack = r.required_string(bt, field, "attack");
      r.parsed(bt, field, "attack", gossip::parse_attack);
      const double scale = bt.get("scale") ? r.number(*bt.get("scale"), field + ".scale", 0, 1e12) : 0;
      for (size_t k = n - m; k < n; ++k) {
        s.peers[site.peers[k]].attack = attack;
        s.peers[site.peers[k]].attack_scale = scale;
      }
    }
    s.sites.push_back(std::move(site));
  }
}

void parse_links(const Reader& r, const toml::table& root, Scenario& s) {
  if (const toml::node* d = root.get("default_link")) {
    s.default_link = r.shape(r.table(*d, "default_link"), "default_link", {});
  }
  const toml::array* arr = array_of_tables(r, root, "link");
  for (size_t i = 0; arr && i < arr->size(); ++i) {
    const toml::table& t = *arr->get(i)->as_table();
    const std::string path = "link[" + std::to_string(i) + "]";
    const std::vector<size_t> ab = r.sites(t, path, s.sites, 2, 2);
    if (ab[0] == ab[1])
      r.fail(t.get("sites"), path + ".sites", "two different sites (within a site: [[site]] link)");
    for (const SiteLink& l : s.links) {
      if ((l.a == ab[0] && l.b == ab[1]) || (l.a == ab[1] && l.b == ab[0])) {
        r.fail(t.get("sites"), path + ".sites", "these sites are linked already");
      }
    }
    s.links.push_back({ab[0], ab[1], r.shape(t, path, {"sites"})});
  }
}

void parse_events(const Reader& r, const toml::table& root, Scenario& s) {
  const toml::array* arr = array_of_tables(r, root, "event");
  for (size_t i = 0; arr && i < arr->size(); ++i) {
    const toml::table& t = *arr->get(i)->as_table();
    const std::string path = "event[" + std::to_string(i) + "]";
    ScenarioEvent e;
    e.line = int(t.source().begin.line);
    const auto at = r.parsed(t, path, "at", [](const std::string& v) { return parse_duration(v); });
    if (!at) r.fail(&t, path + ".at", "missing");
    e.at = *at;
    const std::string action = r.required_string(t, path, "action");
    static const std::pair<std::string_view, EventKind> kinds[] = {
        {"kill", EventKind::kill},        {"restart", EventKind::restart},
        {"join", EventKind::join},        {"partition", EventKind::partition},
        {"heal", EventKind::heal},        {"set_link", EventKind::set_link},
        {"set_site", EventKind::set_site}};
    auto k =
        std::find_if(std::begin(kinds), std::end(kinds), [&](const auto& p) { return p.first == action; });
    if (k == std::end(kinds)) {
      r.fail(t.get("action"), path + ".action",
             "unknown action \"" + action + "\" (kill, restart, join, partition, heal, set_link, set_site)");
    }
    e.kind = k->second;
    if (e.kind == EventKind::kill || e.kind == EventKind::restart || e.kind == EventKind::join) {
      r.only(t, path, {"at", "action", "peer"});
      const std::string name = r.required_string(t, path, "peer");
      auto p =
          std::find_if(s.peers.begin(), s.peers.end(), [&](const ScenarioPeer& q) { return q.name == name; });
      if (p == s.peers.end()) r.fail(t.get("peer"), path + ".peer", "no peer named \"" + name + "\"");
      e.peer = size_t(p - s.peers.begin());
    } else if (e.kind == EventKind::set_site) {
      r.only(t, path, {"at", "action", "site", "uplink", "downlink"});
      if (!t.get("site")) r.fail(&t, path + ".site", "missing");
      const size_t site = r.site_index(*t.get("site"), path + ".site", s.sites);
      e.sites = {site};
      for (auto [key, change, has] :
           {std::tuple{"uplink", &e.uplink, s.sites[site].uplink.has_value()},
            std::tuple{"downlink", &e.downlink, s.sites[site].downlink.has_value()}}) {
        if (!t.get(key)) continue;
        if (!has)
          r.fail(t.get(key), path + "." + key,
                 "site \"" + s.sites[site].name + "\" has no " + key +
                     " to change: declare one in its [[site]]");
        *change = r.wan(t, path, key, false);
      }
      if (!e.uplink && !e.downlink) r.fail(&t, path, "set_site needs uplink or downlink");
    } else if (e.kind == EventKind::set_link) {
      r.only(t, path, {"at", "action", "sites", "bandwidth", "delay", "jitter", "direction"});
      e.sites = r.sites(t, path, s.sites, 2, 2);
      e.bandwidth_bps =
          r.parsed(t, path, "bandwidth", [](const std::string& v) { return parse_bandwidth(v); });
      e.delay = r.parsed(t, path, "delay",
                         [](const std::string& v) { return parse_duration(v, std::chrono::seconds(60)); });
      e.jitter = r.parsed(t, path, "jitter",
                          [](const std::string& v) { return parse_duration(v, std::chrono::seconds(60)); });
      if (!e.bandwidth_bps && !e.delay && !e.jitter)
        r.fail(&t, path, "set_link needs bandwidth, delay or jitter");
      const std::string dir = r.string(t, path, "direction").value_or("both");
      if (dir != "both" && dir != "up" && dir != "down") {
        r.fail(t.get("direction"), path + ".direction", "expected both, up or down");
      }
      e.up = dir != "down";
      e.down = dir != "up";
    } else {
      r.only(t, path, {"at", "action", "sites", "mode"});
      e.sites = r.sites(t, path, s.sites, 1, 2);
      const std::string mode = r.string(t, path, "mode").value_or("blackhole");
      if (e.kind == EventKind::heal && t.get("mode"))
        r.fail(t.get("mode"), path + ".mode", "only for partition");
      if (mode == "blackhole") {
        e.mode = PartitionMode::blackhole;
      } else if (mode == "drop") {
        e.mode = PartitionMode::drop;
      } else if (mode == "reset") {
        e.mode = PartitionMode::reset;
      } else {
        r.fail(t.get("mode"), path + ".mode", "expected blackhole, drop or reset");
      }
    }
    if (e.at > s.duration) r.fail(t.get("at"), path + ".at", "after the scenario's duration");
    s.events.push_back(std::move(e));
  }
  std::stable_sort(s.events.begin(), s.events.end(),
                   [](const ScenarioEvent& a, const ScenarioEvent& b) { return a.at < b.at; });
  // A peer that a join event starts is not running at t = 0.
  for (const ScenarioEvent& e : s.events) {
    if (e.kind == EventKind::join) s.peers[*e.peer].starts = false;
  }
}

void parse_training(const Reader& r, const toml::table& root, Scenario& s) {
  const toml::node* n = root.get("training");
  if (!n) return;
  const toml::table& t = r.table(*n, "training");
  for (const auto& [k, v] : t) {
    const std::string field = "training." + std::string(k.str());
    std::string text;
    if (v.is_string()) {
      text = *v.value<std::string>();
    } else if (v.is_boolean()) {
      text = *v.value<bool>() ? "true" : "false";
    } else if (v.is_integer()) {
      text = std::to_string(*v.value<int64_t>());
    } else if (v.is_floating_point()) {
      std::ostringstream o;
      o.precision(17);
      o << *v.value<double>();
      text = o.str();
    } else {
      r.fail(&v, field, "expected a string, number or boolean");
    }
    s.training.emplace_back(std::string(k.str()), std::move(text));
  }
  std::ostringstream o;
  o << t;
  s.training_toml = o.str() + "\n";
}

}  // namespace

LinkShape Scenario::shape_between(size_t from, size_t to) const {
  if (from == to) return sites.at(from).local;
  for (const SiteLink& l : links) {
    if (l.a == from && l.b == to) return l.shape;
    if (l.a == to && l.b == from) return {l.shape.down, l.shape.up};
  }
  return default_link;
}

bool Scenario::shares_wan() const {
  return std::any_of(sites.begin(), sites.end(),
                     [](const ScenarioSite& s) { return s.uplink || s.downlink; });
}

Scenario parse_scenario(const std::string& toml_text, const std::string& source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    throw std::invalid_argument(source_name + ":" + std::to_string(e.source().begin.line) + ": " +
                                std::string(e.description()));
  }
  const Reader r(source_name);
  r.only(root, "", {"name", "description", "duration", "training", "site", "link", "default_link", "event"});
  Scenario s;
  s.name = r.required_string(root, "", "name");
  s.description = r.string(root, "", "description").value_or("");
  const auto duration =
      r.parsed(root, "", "duration", [](const std::string& v) { return parse_duration(v); });
  if (!duration || *duration <= Nanos(0))
    r.fail(root.get("duration"), "duration", "a positive duration is required");
  s.duration = *duration;
  parse_training(r, root, s);
  parse_sites(r, root, s);
  if (s.peers.size() < 1) r.fail(&root, "site", "no peers");
  parse_links(r, root, s);
  parse_events(r, root, s);
  return s;
}

Scenario load_scenario(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read scenario " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  return parse_scenario(text.str(), file.string());
}

std::vector<Route> layout_routes(const Scenario& s) {
  std::vector<Route> routes;
  for (size_t i = 0; i < s.peers.size(); ++i) {
    for (size_t j = 0; j < s.peers.size(); ++j) {
      if (i == j) continue;
      const size_t a = s.peers[i].site, b = s.peers[j].site;
      routes.push_back({i, j, a, b, s.shape_between(a, b)});
    }
  }
  return routes;
}

bool route_matches(const Route& r, const std::vector<size_t>& sites) {
  if (sites.size() == 1) return (r.dialer_site == sites[0]) != (r.listener_site == sites[0]);
  if (sites.size() != 2) return false;
  return (r.dialer_site == sites[0] && r.listener_site == sites[1]) ||
         (r.dialer_site == sites[1] && r.listener_site == sites[0]);
}

}  // namespace murmur::netem

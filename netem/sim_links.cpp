#include "netem/sim_links.h"

#include <algorithm>
#include <chrono>

#include "netem/runner.h"

namespace murmur::netem {

SimLinks::SimLinks(const Scenario& s, SplitMix64& rng) : rng_(rng) {
  const size_t n = s.sites.size();
  shape_.assign(n, std::vector<LinkProfile>(n));
  blocked_.assign(n, std::vector<bool>(n, false));
  for (size_t a = 0; a < n; ++a)
    for (size_t b = 0; b < n; ++b) shape_[a][b] = s.shape_between(a, b).up;
  for (const ScenarioSite& site : s.sites) {
    uplink_.push_back({site.uplink, 0.0});
    downlink_.push_back({site.downlink, 0.0});
  }
  for (const ScenarioPeer& p : s.peers) site_.push_back(p.site);
}

std::optional<double> SimLinks::send(double now, size_t from, size_t to, size_t bytes, bool bulk) {
  const size_t a = site_.at(from), b = site_.at(to);
  if (blocked_[a][b]) return std::nullopt;
  const auto serial = [bytes](const LinkProfile& p) {
    return p.rate_bps == kUnlimited ? 0.0 : double(bytes) * 8.0 / p.rate_bps;
  };
  const auto seconds = [](Nanos d) { return std::chrono::duration<double>(d).count(); };
  const LinkProfile& prof = shape_[a][b];
  PairQueue& q = pairs_[uint64_t(from) << 32 | to];
  double depart = now + serial(prof), delay = seconds(prof.delay);
  if (bulk) {
    depart = std::max(now, q.bulk_free) + serial(prof);
    q.bulk_free = depart;
  }
  if (a != b) {
    for (SiteQueue* w : {&uplink_[a], &downlink_[b]}) {
      if (!w->profile) continue;
      const double done = (bulk ? std::max(now, w->free) : now) + serial(*w->profile);
      if (bulk) w->free = done;
      depart = std::max(depart, done);
      delay += seconds(w->profile->delay);
    }
  }
  const double jitter = seconds(prof.jitter);
  double release = depart + delay + (jitter > 0 ? (2 * rng_.uniform() - 1) * jitter : 0.0);
  double& last = bulk ? q.last_bulk : q.last_control;
  release = std::max({release, depart, last});
  last = release;
  return release;
}

void SimLinks::apply(const ScenarioEvent& e) {
  if (e.kind == EventKind::set_site) {
    for (auto [change, w] :
         {std::pair{&e.uplink, &uplink_[e.sites.at(0)]}, std::pair{&e.downlink, &downlink_[e.sites.at(0)]}}) {
      if (*change && w->profile) w->profile = (*change)->applied_to(*w->profile);
    }
    return;
  }
  if (e.kind != EventKind::partition && e.kind != EventKind::heal && e.kind != EventKind::set_link) return;
  for (size_t a = 0; a < shape_.size(); ++a)
    for (size_t b = 0; b < shape_.size(); ++b) {
      const Route r{0, 0, a, b, {}};
      if (!route_matches(r, e.sites)) continue;
      if (e.kind == EventKind::set_link) {
        if (auto prof = set_link_profile(e, r, Direction::up, shape_[a][b])) shape_[a][b] = *prof;
      } else {
        blocked_[a][b] = e.kind == EventKind::partition;
      }
    }
}

double SimLinks::last_bulk_from(size_t from, double now) const {
  double out = now;
  for (const auto& kv : pairs_.slots())
    if (kv.used && kv.key >> 32 == from) out = std::max(out, kv.value.last_bulk);
  return out;
}

void SimLinks::forget_idle(double now) {
  idle_.clear();
  for (const auto& s : pairs_.slots())
    if (s.used && std::max({s.value.bulk_free, s.value.last_bulk, s.value.last_control}) <= now)
      idle_.push_back(s.key);
  for (uint64_t k : idle_) pairs_.erase(k);
}

}  // namespace murmur::netem

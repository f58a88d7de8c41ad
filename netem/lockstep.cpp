#include "netem/lockstep.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "gossip/update_guard.h"
#include "gossip/wire.h"

namespace murmur::netem {

namespace g = murmur::gossip;

g::PeerId lockstep_id(int i) {
  if (i < 0 || i >= 65535) throw std::invalid_argument("lockstep peer index out of range");
  g::PeerId p{};
  p[0] = static_cast<uint8_t>((i + 1) & 0xff);
  p[1] = static_cast<uint8_t>((i + 1) >> 8);
  return p;
}
int lockstep_index(const g::PeerId& id) { return (id[0] | id[1] << 8) - 1; }

std::vector<float> mean_of(const std::vector<std::vector<float>>& models) {
  std::vector<double> sum(models.at(0).size(), 0.0);
  for (const auto& x : models)
    for (size_t k = 0; k < x.size(); ++k) sum[k] += x[k];
  std::vector<float> m(sum.size());
  for (size_t k = 0; k < m.size(); ++k) m[k] = static_cast<float>(sum[k] / double(models.size()));
  return m;
}

double spread(const std::vector<std::vector<float>>& models) {
  const std::vector<float> avg = mean_of(models);
  const double norm = g::l2_norm(avg);
  double worst = 0;
  for (const auto& t : models) worst = std::max(worst, g::l2_distance(t, avg) / norm);
  return worst;
}

std::set<Edge> random_graph(int p, int degree, SplitMix64& rng) {
  std::set<Edge> e;
  if (degree >= p - 1) {  // every pair
    for (int i = 0; i < p; ++i)
      for (int j = i + 1; j < p; ++j) e.insert({i, j});
    return e;
  }
  std::vector<int> order(static_cast<size_t>(p));
  for (int m = 0; m < degree; ++m) {
    std::iota(order.begin(), order.end(), 0);
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    for (size_t i = 0; i + 1 < order.size(); i += 2) e.insert(std::minmax(order[i], order[i + 1]));
  }
  return e;
}

LockstepSwarm::LockstepSwarm(const std::vector<std::vector<float>>& start, const g::RoundConfig& cfg,
                             uint64_t seed)
    : model(start), bytes_sent(start.size(), 0) {
  peers.reserve(start.size());
  for (size_t i = 0; i < start.size(); ++i) {
    peers.emplace_back(start[i].size(), cfg, seed + i);
    peers.back().start(start[i]);
  }
}

void LockstepSwarm::collect(int i) {
  std::shared_ptr<const g::TrainMessage> last;  // a delta goes to every link: size it once
  size_t bytes = 0;
  const auto adversary = adversaries.find(i);
  for (g::RoundAction& a : peers[i].take_actions()) {
    if (auto* s = std::get_if<g::SendTrain>(&a)) {
      if (adversary != adversaries.end()) s->msg = adversary->second.forge(peers[i], *s);
      if (s->msg != last) {
        bytes = g::wire::encoded_size(*s->msg);
        last = s->msg;
      }
      bytes_sent[i] += bytes;
      wire.push_back({i, lockstep_index(s->to), s->epoch, s->seq, s->msg});
    } else if (auto* ad = std::get_if<g::Adopted>(&a)) {
      adoptions.emplace_back(i, *ad);
      model[i].assign(peers[i].theta().begin(), peers[i].theta().end());
    } else if (auto* m = std::get_if<g::Mixed>(&a)) {
      mixes.emplace_back(i, std::move(*m));
      model[i].assign(peers[i].theta().begin(), peers[i].theta().end());
    } else if (auto* r = std::get_if<g::Rejected>(&a)) {
      rejections.push_back(std::move(r->reason));
    } else if (auto* d = std::get_if<g::Distrusted>(&a)) {
      cuts.emplace_back(i, *d);
      disconnect(i, lockstep_index(d->peer));
    }
  }
}

void LockstepSwarm::deliver() {
  while (!wire.empty()) {
    Msg m = std::move(wire.front());
    wire.pop_front();
    if (on_wire && !on_wire(m)) continue;
    peers[m.to].on_message(lockstep_id(m.from), m.epoch, m.seq, *m.msg, now);
    collect(m.to);
  }
}

void LockstepSwarm::connect(int i, int j) {
  const uint64_t e = ++next_epoch_;
  edges.insert(std::minmax(i, j));  // first: a peer that refuses the link disconnects it in collect
  epochs[std::minmax(i, j)] = e;
  peers[i].link_up(lockstep_id(j), e);
  peers[j].link_up(lockstep_id(i), e);
  collect(i);
  collect(j);
}

void LockstepSwarm::disconnect(int i, int j) {
  if (!edges.contains(std::minmax(i, j))) return;
  const uint64_t e = epochs.at(std::minmax(i, j));
  peers[i].link_down(lockstep_id(j), e, now);
  peers[j].link_down(lockstep_id(i), e, now);
  collect(i);
  collect(j);
  edges.erase(std::minmax(i, j));
}

void LockstepSwarm::set_graph(const std::set<Edge>& next) {
  for (const Edge& e : std::set<Edge>(edges))
    if (!next.contains(e)) disconnect(e.first, e.second);
  for (const Edge& e : next)
    if (!edges.contains(e)) connect(e.first, e.second);
  deliver();
}

void LockstepSwarm::done(int i) {
  peers[i].local_steps_done(model[i], now);
  collect(i);
}

bool LockstepSwarm::round(const std::function<void(int, std::vector<float>&)>& local) {
  for (int i = 0; i < size(); ++i) {
    if (local) local(i, model[i]);
    done(i);
  }
  deliver();
  return std::all_of(peers.begin(), peers.end(),
                     [](const g::RoundDriver& p) { return p.phase() == g::RoundDriver::Phase::computing; });
}

void LockstepSwarm::expire() {
  for (const g::RoundDriver& p : peers)
    if (auto d = p.deadline()) now = std::max(now, *d);
  for (int i = 0; i < size(); ++i) {
    peers[i].tick(now);
    collect(i);
  }
  deliver();
}

uint64_t LockstepSwarm::rejected() const {
  uint64_t n = 0;
  for (const auto& p : peers) {
    const g::ConsensusCounters& c = p.consensus().counters();
    n += c.malformed + c.norm_outliers + c.gaps + c.dropped_unsynced;
  }
  return n;
}

}  // namespace murmur::netem

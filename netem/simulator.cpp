#include "netem/simulator.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <stdexcept>
#include <variant>

#include "compress/codec.h"
#include "gossip/byzantine.h"
#include "gossip/id_table.h"
#include "gossip/round_driver.h"
#include "gossip/wire.h"
#include "model/rng.h"
#include "netem/runner.h"
#include "netem/sim_links.h"

namespace murmur::netem {

namespace g = murmur::gossip;

void validate(const SimConfig& c) {
  auto fail = [](const std::string& what) { throw std::invalid_argument(what); };
  if (!c.make_objective) validate(c.objective);
  if (c.rounds < 1) fail("rounds must be at least 1");
  c.round.schedule.validate();
  if (!(c.step_s > 0 && c.step_s <= 3600)) fail("step-s must be in (0, 3600]");
  if (!(c.round.outer_lr >= 0 && c.round.outer_lr <= 10)) fail("outer-lr must be within 0..10");
  if (!(c.round.outer_momentum >= 0 && c.round.outer_momentum < 1)) fail("outer-momentum must be in [0, 1)");
  if (!(c.round.wait_max >= 0 && c.round.wait_max <= 3600 * 1000)) fail("wait-max-s must be within 0..3600");
  if (!(c.duration_s >= 0) || !(c.sample_s >= 0)) fail("duration and sample-s must be >= 0");
  g::validate(c.membership);
}

namespace {

using Millis = g::Millis;

g::PeerId sim_id(size_t i) {
  g::PeerId id{};
  for (size_t b = 0; b < 4; ++b) id[b] = static_cast<uint8_t>(i >> (8 * b));
  id[31] = 0x5a;  // ids are opaque to the protocol; this keeps them apart from the all-zero id
  return id;
}
size_t sim_index(const g::PeerId& id) {
  size_t i = 0;
  for (size_t b = 0; b < 4; ++b) i |= size_t{id[b]} << (8 * b);
  return i;
}
std::string sim_addr(size_t i) { return "sim://" + std::to_string(i); }
std::optional<size_t> index_of_addr(const std::string& addr, size_t peers) {
  if (addr.rfind("sim://", 0) != 0) return std::nullopt;
  try {
    const size_t i = std::stoul(addr.substr(6));
    if (i < peers) return i;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// A training message on a link (a delta is one message shared by all its receivers).
struct TrainMsg {
  uint64_t epoch = 0, seq = 0;
  std::shared_ptr<const g::TrainMessage> msg;
  size_t bytes = 0;  // on the wire (gossip/wire.h), sized once by the sender
};

enum class Kind : uint8_t { tick, round_done, wait_deadline, leave, deliver, sample, scenario_event };

struct Event {
  double t = 0;
  uint64_t order = 0;  // ties break in scheduling order: the simulation is deterministic
  Kind kind = Kind::tick;
  uint32_t peer = 0;
  uint64_t tag = 0;  // round_done / wait_deadline: the peer's generation; deliver: slot; event: index
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : order > o.order; }
};

struct InFlight {
  uint32_t from = 0;
  std::variant<g::Message, TrainMsg> body;
};

enum class Phase : uint8_t { off, computing, waiting, done };

struct Peer {
  double compute = 1.0;
  bool started = false, crashed = false;
  Phase phase = Phase::off;
  uint64_t gen = 0;  // bumps on every kill and start: stale timers are ignored
  uint64_t incarnation = 0;
  std::unique_ptr<g::Membership> member;
  std::unique_ptr<g::RoundDriver> driver;   // its θ is the peer's model; kept across a kill for a restart
  std::unique_ptr<g::Adversary> adversary;  // a Byzantine peer's (the scenario's byzantine peers)
  double wait_start = 0, wait_s = 0, link_distance = 0;
  double round_loss = 0;  // after the current round's local steps (record_rounds)
  uint64_t bytes_sent = 0, bytes_received = 0;
};

class Sim {
 public:
  Sim(const Scenario& s, const SimConfig& c, const std::function<void(const SimSample&)>& progress)
      : s_(s),
        c_(c),
        progress_(progress),
        rng_(mix64(c.seed ^ 0x51a7e5)),
        links_(s, rng_),
        peers_(s.peers.size()) {
    obj_ = c.make_objective ? c.make_objective(peers_.size())
                            : make_quadratic(c.objective, peers_.size(), c.seed);
    result_.loss_name = obj_->loss_name();
    initial_ = obj_->initial();
    for (size_t i = 0; i < peers_.size(); ++i) {
      peers_[i].compute = s.peers[i].compute;
      if (!s.peers[i].attack.empty())
        peers_[i].adversary = std::make_unique<g::Adversary>(
            g::AttackConfig{g::parse_attack(s.peers[i].attack), s.peers[i].attack_scale}, c.seed + i);
    }
    sample_s_ = c.sample_s > 0 ? c.sample_s : double(c.round.schedule.inner_steps) * c.step_s;
  }

  SimResult run() {
    tick_ms_ = std::max<Millis>(1, c_.membership.probe_interval / 5);
    size_t first = peers_.size();
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (!s_.peers[i].starts) continue;
      start_peer(i, first == peers_.size() ? std::vector<size_t>{} : std::vector<size_t>{first});
      if (first == peers_.size()) first = i;
    }
    for (size_t k = 0; k < s_.events.size(); ++k)
      push(std::chrono::duration<double>(s_.events[k].at).count(), Kind::scenario_event, 0, k);
    push(tick_ms_ / 1e3, Kind::tick, 0, 0);
    push(sample_s_, Kind::sample, 0, 0);
    while (!queue_.empty()) {
      const Event e = queue_.top();
      if (c_.duration_s > 0 && e.t > c_.duration_s) break;
      queue_.pop();
      now_ = e.t;
      ++result_.events;
      dispatch(e);
      if (finished()) break;
    }
    take_sample();
    for (size_t i = 0; i < peers_.size(); ++i) {
      const Peer& p = peers_[i];
      result_.peers.push_back({s_.peers[i].name, p.driver ? p.driver->round() : 0,
                               obj_->peer_loss(i, p.driver ? p.driver->theta() : initial_), p.bytes_sent,
                               p.bytes_received, p.wait_s, p.crashed});
    }
    result_.virtual_s = now_;
    return std::move(result_);
  }

 private:
  // -- the event queue -------------------------------------------------------------------------------------
  void push(double t, Kind kind, size_t peer, uint64_t tag) {
    queue_.push(Event{t, order_++, kind, static_cast<uint32_t>(peer), tag});
  }
  bool finished() const {
    return std::all_of(peers_.begin(), peers_.end(),
                       [](const Peer& p) { return p.phase == Phase::done || p.phase == Phase::off; }) &&
           !pending_starts_after(now_);
  }
  bool pending_starts_after(double t) const {
    return std::any_of(s_.events.begin(), s_.events.end(), [&](const ScenarioEvent& e) {
      return (e.kind == EventKind::join || e.kind == EventKind::restart) &&
             std::chrono::duration<double>(e.at).count() > t;
    });
  }

  void dispatch(const Event& e) {
    switch (e.kind) {
      case Kind::tick:
        for (size_t i = 0; i < peers_.size(); ++i) {
          Peer& p = peers_[i];
          if (!p.member || p.phase == Phase::off || p.phase == Phase::done) continue;
          p.member->tick(now_ms());
          drain_actions(i);
        }
        push(now_ + tick_ms_ / 1e3, Kind::tick, 0, 0);
        links_.forget_idle(now_);
        break;
      case Kind::round_done:
        if (peers_[e.peer].gen == e.tag && peers_[e.peer].phase == Phase::computing) end_local_steps(e.peer);
        break;
      case Kind::wait_deadline:
        if (peers_[e.peer].gen == e.tag && peers_[e.peer].phase == Phase::waiting) {
          peers_[e.peer].driver->tick(now_ms());
          drain_round(e.peer);
        }
        break;
      case Kind::leave:
        if (peers_[e.peer].gen == e.tag && peers_[e.peer].phase == Phase::done) {
          peers_[e.peer].member->leave(now_ms());
          drain_actions(e.peer);
        }
        break;
      case Kind::deliver:
        deliver(e.peer, e.tag);
        break;
      case Kind::sample:
        take_sample();
        push(now_ + sample_s_, Kind::sample, 0, 0);
        break;
      case Kind::scenario_event:
        apply(s_.events[e.tag]);
        break;
    }
  }
  Millis now_ms() const { return static_cast<Millis>(std::llround(now_ * 1e3)); }

  // -- the network (netem/sim_links.h) -------------------------------------------------------------------
  void send(size_t from, size_t to, std::variant<g::Message, TrainMsg> body, size_t bytes, bool bulk) {
    ++result_.messages;
    if (bulk) {
      peers_[from].bytes_sent += bytes;
      train_bytes_ += bytes;
    } else {
      membership_bytes_ += bytes;
    }
    const std::optional<double> release = links_.send(now_, from, to, bytes, bulk);
    if (!release) {
      ++result_.dropped;
      return;
    }
    size_t slot;
    if (free_slots_.empty()) {
      slot = flight_.size();
      flight_.emplace_back();
    } else {
      slot = free_slots_.back();
      free_slots_.pop_back();
    }
    flight_[slot] = InFlight{static_cast<uint32_t>(from), std::move(body)};
    push(*release, Kind::deliver, to, slot);
  }

  void deliver(size_t to, uint64_t slot) {
    InFlight m = std::move(flight_[slot]);
    flight_[slot] = {};
    free_slots_.push_back(slot);
    Peer& p = peers_[to];
    if (!p.member || p.phase == Phase::off) {
      ++result_.dropped;
      return;
    }
    if (auto* msg = std::get_if<g::Message>(&m.body)) {
      p.member->on_message(sim_id(m.from), *msg, now_ms());
      drain_actions(to);
    } else {
      on_train(to, m.from, std::get<TrainMsg>(m.body));
    }
  }

  // The round driver's actions: its messages go out (a delta sized once for all its links), an adoption
  // restarts the round's compute, a mix ends the round.
  void drain_round(size_t i) {
    Peer& p = peers_[i];
    std::shared_ptr<const g::TrainMessage> last;
    size_t bytes = 0;
    for (g::RoundAction& a : p.driver->take_actions()) {
      if (auto* s = std::get_if<g::SendTrain>(&a)) {
        if (p.adversary) s->msg = p.adversary->forge(*p.driver, *s);
        if (s->msg != last) {
          bytes = g::wire::encoded_size(*s->msg);
          last = s->msg;
        }
        send(i, sim_index(s->to), TrainMsg{s->epoch, s->seq, s->msg, bytes}, bytes, true);
      } else if (auto* d = std::get_if<g::Distrusted>(&a)) {
        p.member->distrust(d->peer);  // its LinkDown comes back through drain_actions
      } else if (std::holds_alternative<g::Adopted>(a)) {
        if (p.phase == Phase::computing) schedule_round(i);  // restart the round from the adopted state
      } else if (auto* m = std::get_if<g::Mixed>(&a)) {
        end_round(i, m->round);
      }
    }
  }

  // -- membership ------------------------------------------------------------------------------------------
  void drain_actions(size_t i) {
    Peer& p = peers_[i];
    for (g::Action& a : p.member->take_actions()) {
      if (auto* s = std::get_if<g::SendTo>(&a)) {
        const size_t to = sim_index(s->to.id);
        if (to >= peers_.size()) continue;
        const size_t bytes = g::wire::encoded_size(s->msg);
        send(i, to, std::move(s->msg), bytes, false);
      } else if (auto* sa = std::get_if<g::SendToAddr>(&a)) {
        const std::optional<size_t> to = index_of_addr(sa->addr, peers_.size());
        if (!to) continue;
        const size_t bytes = g::wire::encoded_size(sa->msg);
        send(i, *to, std::move(sa->msg), bytes, false);
      } else if (auto* up = std::get_if<g::LinkUp>(&a)) {
        p.driver->link_up(up->peer.id, up->epoch);
        drain_round(i);
      } else if (auto* down = std::get_if<g::LinkDown>(&a)) {
        p.driver->link_down(down->peer, down->epoch, now_ms());
        drain_round(i);
      } else if (auto* ev = std::get_if<g::MemberEvent>(&a)) {
        if (ev->state == g::PeerState::suspect) ++result_.suspicions;
        if (ev->state == g::PeerState::dead) {
          ++result_.deaths;
          const size_t j = sim_index(ev->peer.id);
          if (j < peers_.size() && peers_[j].phase != Phase::off && peers_[j].phase != Phase::done)
            ++result_.false_deaths;
        }
      }
    }
  }

  // -- training: the round driver, with compute in virtual time -----------------------------------------
  void schedule_round(size_t i) {
    Peer& p = peers_[i];
    ++p.gen;  // cancels the timers of the round before
    p.phase = Phase::computing;
    const double steps = double(c_.round.schedule.steps_in(p.driver->round()));
    push(now_ + steps * c_.step_s / p.compute, Kind::round_done, i, p.gen);
  }
  void end_local_steps(size_t i) {
    Peer& p = peers_[i];
    const auto start = p.driver->theta();
    scratch_.assign(start.begin(), start.end());
    const g::RoundSchedule& sched = c_.round.schedule;
    obj_->local_steps(i, scratch_, sched.first_step(p.driver->round()), sched.steps_in(p.driver->round()));
    if (c_.record_rounds) p.round_loss = obj_->peer_loss(i, scratch_);
    p.phase = Phase::waiting;
    p.wait_start = now_;
    p.driver->local_steps_done(scratch_, now_ms());
    drain_round(i);
    if (p.phase == Phase::waiting) push(double(*p.driver->deadline()) / 1e3, Kind::wait_deadline, i, p.gen);
  }
  void end_round(size_t i, uint64_t round) {
    Peer& p = peers_[i];
    p.wait_s += now_ - p.wait_start;
    p.link_distance = p.driver->consensus().consensus_distance(p.driver->theta());
    if (c_.record_rounds) result_.rounds.push_back({uint32_t(i), round, now_, p.round_loss, p.link_distance});
    if (round + 1 >= uint64_t(c_.rounds)) {
      // Like NetLoop, leave once the last deltas are out: Bye and LinkClose would overtake them.
      p.phase = Phase::done;
      push(std::min(links_.last_bulk_from(i, now_), now_ + g::kLeaveDrain / 1e3), Kind::leave, i, p.gen);
      return;
    }
    schedule_round(i);
  }

  void on_train(size_t i, size_t from, const TrainMsg& m) {
    Peer& p = peers_[i];
    if (p.phase == Phase::done) return;
    p.bytes_received += m.bytes;
    p.driver->on_message(sim_id(from), m.epoch, m.seq, *m.msg, now_ms());
    drain_round(i);
  }

  // -- the timeline ----------------------------------------------------------------------------------------
  void start_peer(size_t i, const std::vector<size_t>& via) {
    Peer& p = peers_[i];
    const bool restart = p.started;
    ++p.incarnation;
    p.member =
        std::make_unique<g::Membership>(g::PeerInfo{sim_id(i), sim_addr(i), p.incarnation}, c_.membership,
                                        mix64(c_.seed * 1000003 + i * 7919 + p.incarnation));
    auto driver = std::make_unique<g::RoundDriver>(obj_->dim(), c_.round, mix64(c_.seed + i));
    if (restart) {
      // Resumes its own state, as `murmur node --resume` from a checkpoint taken when it died.
      driver->resume(p.driver->theta(), p.driver->consensus().public_copy(), p.driver->momentum(),
                     p.driver->round());
    } else {
      driver->start(initial_);
    }
    p.driver = std::move(driver);
    p.started = true;
    p.crashed = false;
    for (size_t j : via) p.member->join(sim_addr(j), now_ms());
    drain_actions(i);
    if (p.driver->round() >= uint64_t(c_.rounds)) {
      p.phase = Phase::done;
      return;
    }
    schedule_round(i);
  }
  void kill_peer(size_t i) {
    Peer& p = peers_[i];
    if (p.phase == Phase::off || p.phase == Phase::done) return;
    p.phase = Phase::off;
    p.crashed = true;
    ++p.gen;
    // The restart must outbid every incarnation this process used, refutations included.
    if (p.member) p.incarnation = p.member->self().incarnation;
    p.member.reset();
  }
  std::vector<size_t> running_contacts() {
    std::vector<size_t> live;
    for (size_t j = 0; j < peers_.size(); ++j)
      if (peers_[j].phase == Phase::computing || peers_[j].phase == Phase::waiting) live.push_back(j);
    for (size_t k = 0; k < live.size(); ++k) std::swap(live[k], live[k + rng_.below(live.size() - k)]);
    if (live.size() > g::Membership::kMaxJoinAddrs) live.resize(g::Membership::kMaxJoinAddrs);
    return live;
  }
  void apply(const ScenarioEvent& e) {
    switch (e.kind) {
      case EventKind::kill:
        kill_peer(*e.peer);
        break;
      case EventKind::restart:
      case EventKind::join:
        if (peers_[*e.peer].phase == Phase::off) start_peer(*e.peer, running_contacts());
        break;
      case EventKind::partition:
      case EventKind::heal:
      case EventKind::set_link:
      case EventKind::set_site:
        links_.apply(e);
        break;
    }
  }

  // -- samples ---------------------------------------------------------------------------------------------
  void take_sample() {
    SimSample s;
    s.time_s = now_;
    std::vector<double> mean(obj_->dim(), 0.0);
    std::vector<const Peer*> in;
    for (size_t i = 0; i < peers_.size(); ++i) {
      const Peer& p = peers_[i];
      if (!p.started || p.crashed || p.adversary) continue;  // the honest peers' swarm
      in.push_back(&p);
      s.mean_loss += obj_->peer_loss(i, p.driver->theta());
    }
    s.peers = in.size();
    s.train_bytes = train_bytes_;
    s.membership_bytes = membership_bytes_;
    if (!in.empty()) {
      for (const Peer* p : in) {
        for (size_t k = 0; k < mean.size(); ++k) mean[k] += p->driver->theta()[k];
        s.mean_round += double(p->driver->round());
        s.link_distance += p->link_distance;
      }
      const double n = double(in.size());
      std::vector<float> xbar(mean.size());
      double norm = 0;
      for (size_t k = 0; k < mean.size(); ++k) {
        xbar[k] = static_cast<float>(mean[k] / n);
        norm += double(xbar[k]) * xbar[k];
      }
      norm = std::sqrt(norm);
      for (const Peer* p : in) {
        double d2 = 0;
        for (size_t k = 0; k < mean.size(); ++k) {
          const double e = double(p->driver->theta()[k]) - xbar[k];
          d2 += e * e;
        }
        s.consensus += norm > 0 ? std::sqrt(d2) / norm : 0.0;
      }
      s.mean_round /= n;
      s.mean_loss /= n;
      s.link_distance /= n;
      s.consensus /= n;
      s.loss_of_mean = obj_->loss(xbar);
    }
    result_.samples.push_back(s);
    if (progress_) progress_(s);
  }

  const Scenario& s_;
  const SimConfig& c_;
  std::function<void(const SimSample&)> progress_;
  SplitMix64 rng_;
  SimLinks links_;
  std::vector<Peer> peers_;
  std::unique_ptr<SimObjective> obj_;
  std::vector<float> initial_;  // every peer's θ at its first start
  std::vector<float> scratch_;  // a peer's θ during its local steps
  double sample_s_ = 1;         // virtual seconds between samples
  Millis tick_ms_ = 100;
  std::vector<InFlight> flight_;
  std::vector<size_t> free_slots_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  uint64_t order_ = 0;
  double now_ = 0;
  uint64_t train_bytes_ = 0, membership_bytes_ = 0;
  SimResult result_;
};

}  // namespace

SimResult simulate(const Scenario& s, const SimConfig& cfg,
                   const std::function<void(const SimSample&)>& progress) {
  validate(cfg);
  if (s.peers.empty()) throw std::invalid_argument("the scenario has no peers");
  if (s.peers.size() > (size_t{1} << 20)) throw std::invalid_argument("at most 1048576 peers");
  return Sim(s, cfg, progress).run();
}

}  // namespace murmur::netem

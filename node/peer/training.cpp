#include "node/peer/training.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "gossip/algorithm_state.h"
#include "gossip/byzantine.h"
#include "gossip/codec_policy.h"
#include "gossip/outer_optimizer.h"
#include "gossip/peer_id.h"
#include "gossip/ring_allreduce.h"
#include "gossip/round_driver.h"
#include "gossip/wire.h"
#include "model/checkpoint.h"
#include "model/init.h"
#include "model/trainer.h"
#include "node/run/interrupt.h"
#include "node/run/options.h"

namespace murmur::peer {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using gossip::PeerId;
namespace wire = gossip::wire;

namespace {
// How long a ring all-reduce waits without any segment while every member is still alive (a slow
// member's compute, a slow link): long, because membership already reports dead members.
constexpr double kRingSilenceS = 600;

constexpr const char* kAlgorithmStateFile = "gossip_state.bin";

// The ring of allreduce/diloco cannot go on: a member left or was declared dead, or it fell silent.
struct RingBroken : std::runtime_error {
  using std::runtime_error::runtime_error;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
// The round driver's clock.
gossip::Millis now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

class PeerTraining {
 public:
  PeerTraining(const PeerArgs& a, const PeerId& self, PeerMailbox& mailbox, run::JsonlLog& log,
               net::MetricsRegistry& metrics)
      : a_(a),
        self_(self),
        mailbox_(mailbox),
        log_(log),
        metrics_(metrics),
        rejected_total_(
            metrics.counters("murmur_training_rejected_total",
                             "Neighbours' training contributions refused or cut down, by peer and "
                             "kind (malformed, outlier, stale, far, gap, nonfinite, diverged)",
                             {"peer", "kind"})),
        cut_total_(metrics.counters("murmur_training_links_cut_total",
                                    "Neighbour links cut for repeated strikes, by peer", {"peer"})),
        rollback_total_(metrics.counters("murmur_training_rollbacks_total",
                                         "Rollbacks to the state before a mix after a non-finite loss", {})),
        schedule_(round_config(a).schedule),
        cfg_(a.model.config()),
        train_(a.data, "train"),
        val_(a.data, "val"),
        context_(a.batch.context_for(cfg_)),
        model_(make_backend(parse_device(a.device.kind), cfg_, a.batch.batch, context_, a.device.threads)),
        trainer_(*model_, train_, train_options()),
        n_(model_->layout().total()),
        theta_(n_),
        start_(n_),
        outer_(n_) {
    if (a.algo == "gossip")
      driver_.emplace(n_, round_config(a), a.train.seed ^ (uint64_t{a.peer_index} << 32));
    if (auto attack = attack_config(a)) adversary_.emplace(*attack, a.train.seed ^ a.peer_index);
    if (a.round_budget_s > 0) ladder_ = gossip::parse_codec_ladder(a.codec_ladder, n_);
  }

  json run();

 private:
  TrainOptions train_options() {
    TrainOptions o = a_.train.trainer(a_.batch, context_, a_.peer_index);
    if (a_.algo == "allreduce") o.reduce_grads = [this](ModelBackend& m) { average_grads(m); };
    return o;
  }
  uint64_t round() const { return driver_ ? driver_->round() : round_; }
  // Throws the network side's failure (peers of another run refused this one): nothing to save.
  void check_admitted() const {
    if (auto why = mailbox_.failure()) throw std::runtime_error(*why);
  }

  void initialise();
  void restore_algorithm_state(const CheckpointData& ck);
  void inner_steps(int64_t count);
  void roll_back(const StepStats& s);
  void drain_events(Clock::time_point deadline);
  void on_event(TrainEvent& e);
  void on_link(const LinkEvent& e);
  void on_payload(InPayload& p);
  // Carries out the round driver's actions: sends, adoption, the mix, rejections.
  void drain_round_actions();
  // A joiner's first wait: for a neighbour's snapshot, to adopt a running swarm's state.
  void wait_for_state();
  void gossip_round();
  void diloco_round();
  // Sum of `buf` over the ring of all peers (allreduce, diloco); throws when a
  // ring member stays silent for wait_max_s.
  void ring_sum(std::span<float> buf);
  void average_grads(ModelBackend& m);
  void wait_for_ring();
  void throttle(int64_t tokens);
  // Every --log-every steps, a "steps" event with their mean train loss: a loss curve finer than
  // rounds, the same for every algorithm (time-to-target compares them).
  void log_steps(const StepStats& s);
  void save(const std::string& why);
  double val_loss();

  const PeerArgs& a_;
  PeerId self_;
  PeerMailbox& mailbox_;
  run::JsonlLog& log_;
  net::MetricsRegistry& metrics_;
  net::CounterFamily &rejected_total_, &cut_total_, &rollback_total_;
  const gossip::RoundSchedule schedule_;  // the steps of each round, and the warm-up (every algorithm)
  ModelConfig cfg_;
  TokenDataset train_, val_;
  int context_;
  std::unique_ptr<ModelBackend> model_;
  Trainer trainer_;
  size_t n_;
  std::vector<float> theta_, start_;
  std::optional<gossip::RoundDriver> driver_;      // gossip: the round protocol
  std::optional<gossip::Adversary> adversary_;     // --byzantine: forges what the driver sends
  gossip::OuterOptimizer outer_;                   // diloco's global outer step
  std::map<PeerId, gossip::PeerInfo> neighbours_;  // gossip: where each link's peer is
  std::vector<compress::CodecSpec> ladder_;        // --round-budget-s: codecs fine to coarse
  uint64_t round_ = 0;                             // the baselines' round (gossip: the driver's)
  bool adopted_ = false;  // a neighbour's state replaced ours during local steps: restart the round

  // ring all-reduce (allreduce, diloco)
  std::vector<gossip::PeerInfo> ring_;  // every peer, ordered by id; fixed at start
  int ring_rank_ = 0;
  uint64_t ring_op_ = 0;
  uint64_t ring_seq_ = 0;
  std::deque<gossip::RingSegment> ring_backlog_;  // segments of operations not started yet

  // metrics
  double wait_s_ = 0, window_loss_ = 0, log_loss_ = 0;
  int64_t window_steps_ = 0, log_steps_ = 0;
  uint64_t rejected_ = 0, rollbacks_ = 0;
  const run::StopRule stop_{a_.train.max_seconds};
  double step_seconds_ = 0;
  double last_loss_ = NAN;
};

void PeerTraining::initialise() {
  if (!a_.resume.empty()) {
    const CheckpointData ck = load_checkpoint(a_.resume, /*need_optimizer=*/true);
    if (ck.params.size() != n_)
      throw std::runtime_error("--resume: the checkpoint's model differs from --preset");
    theta_ = ck.params;
    model_->write_params(theta_);
    model_->write_moments(ck.m, ck.v);
    trainer_.restore(ck.state);
    round_ = ck.state.value("round", uint64_t{0});
    restore_algorithm_state(ck);
    std::printf("resumed from %s at round %llu, step %lld\n", resolve_checkpoint(a_.resume).c_str(),
                static_cast<unsigned long long>(round_), static_cast<long long>(trainer_.steps_done()));
    return;
  }
  // The same seed on every peer: all replicas start from one point.
  init_gpt2_params(theta_, model_->layout(), cfg_, a_.train.seed);
  model_->write_params(theta_);
  if (driver_) driver_->start(theta_);
}

// The outer momentum and the public copy θ̂_i (θ_i − θ̂_i is what error
// compensation still owes the neighbours); the neighbours' copies are not kept:
// every link starts again from a snapshot.
void PeerTraining::restore_algorithm_state(const CheckpointData& ck) {
  const auto it = ck.extras.find(kAlgorithmStateFile);
  const gossip::AlgorithmState st =
      it == ck.extras.end() ? gossip::AlgorithmState{} : gossip::decode_algorithm_state(it->second, n_);
  if (driver_) {
    driver_->resume(theta_, st.public_copy.empty() ? std::span<const float>(theta_) : st.public_copy,
                    st.momentum, round_);
  } else if (!st.momentum.empty()) {
    outer_.restore(st.momentum);
  }
}

void PeerTraining::throttle(int64_t tokens) {
  if (a_.tokens_per_s_limit <= 0) return;
  const double want = static_cast<double>(tokens) / a_.tokens_per_s_limit;
  if (want > step_seconds_) std::this_thread::sleep_for(std::chrono::duration<double>(want - step_seconds_));
}

void PeerTraining::log_steps(const StepStats& s) {
  if (a_.log_every <= 0) return;
  log_loss_ += s.loss;
  if (++log_steps_ < a_.log_every) return;
  log_.write({{"event", "steps"},
              {"step", trainer_.steps_done()},
              {"loss", log_loss_ / static_cast<double>(log_steps_)},
              {"tokens", trainer_.tokens_done()}});
  log_loss_ = 0;
  log_steps_ = 0;
}

void PeerTraining::inner_steps(int64_t count) {
  for (int64_t i = 0; i < count && trainer_.steps_done() < a_.train.steps && !run::interrupted() &&
                      !adopted_ && !mailbox_.failure();
       ++i) {
    const StepStats s = trainer_.step();
    step_seconds_ = s.seconds;
    throttle(s.tokens);
    if (!std::isfinite(s.loss)) {
      roll_back(s);
      continue;
    }
    window_loss_ += s.loss;
    ++window_steps_;
    log_steps(s);
    last_loss_ = s.loss;
    // Keep the network side's queues moving between steps (link events, snapshots).
    drain_events(Clock::now());
  }
}

// A non-finite loss right after a mix is the neighbours' doing more likely than ours: go back to the
// state before that mix, with fresh optimizer moments (a NaN gradient poisoned them), and strike the
// link that pulled hardest. Twice in a row, or with nothing to go back to, the run stops (and saves).
void PeerTraining::roll_back(const StepStats& s) {
  if (!driver_ || !driver_->rollback()) run::check_loss(s);  // throws
  model_->write_params(driver_->theta());
  const std::vector<float> zero(n_, 0.0f);
  model_->write_moments(zero, zero);
  ++rollbacks_;
  rollback_total_.add({});
  log_.write({{"event", "rollback"}, {"step", s.step}, {"loss", s.loss}, {"round", driver_->round()}});
  std::fprintf(stderr, "loss %g at step %lld after mixing: rolled back to the state before the mix\n", s.loss,
               static_cast<long long>(s.step));
  drain_round_actions();
}

void PeerTraining::on_link(const LinkEvent& e) {
  if (!driver_) return;  // only gossip trains over neighbour links
  if (e.up) {
    neighbours_[e.peer.id] = e.peer;
    driver_->link_up(e.peer.id, e.epoch);
  } else {
    driver_->link_down(e.peer.id, e.epoch, now_ms());
  }
  drain_round_actions();
}

void PeerTraining::on_payload(InPayload& p) {
  wire::Decoded<gossip::TrainMessage> decoded = wire::decode_train(p.bytes);
  if (!decoded) {
    ++rejected_;
    rejected_total_.add({metrics_.peer_label(p.from), gossip::to_string(gossip::RejectKind::malformed)});
    log_.write({{"event", "rejected"}, {"peer", gossip::short_name(p.from)}, {"reason", decoded.error}});
    return;
  }
  gossip::TrainMessage& msg = *decoded.value;
  if (p.epoch == gossip::kRingEpoch) {
    if (auto* seg = std::get_if<gossip::RingSegment>(&msg)) ring_backlog_.push_back(std::move(*seg));
    return;
  }
  if (!driver_) return;
  driver_->on_message(p.from, p.epoch, p.seq, msg, now_ms());
  drain_round_actions();
}

void PeerTraining::drain_round_actions() {
  std::shared_ptr<const gossip::TrainMessage> last;  // a delta goes to every link: encode it once
  std::vector<uint8_t> bytes;
  for (gossip::RoundAction& a : driver_->take_actions()) {
    if (auto* s = std::get_if<gossip::SendTrain>(&a)) {
      if (adversary_) s->msg = adversary_->forge(*driver_, *s);
      const auto to = neighbours_.find(s->to);
      if (to == neighbours_.end()) continue;
      if (s->msg != last) {
        bytes = wire::encode_train(*s->msg);
        last = s->msg;
      }
      mailbox_.push_send(OutPayload{to->second, s->epoch, s->seq, bytes});
    } else if (auto* ad = std::get_if<gossip::Adopted>(&a)) {
      model_->write_params(driver_->theta());
      // The LR schedule continues where the swarm is; the data stream is this peer's own.
      json st = trainer_.state();
      st["step"] = std::min<int64_t>(schedule_.first_step(ad->round), a_.train.steps - 1);
      trainer_.restore(st);
      adopted_ = true;
      log_.write({{"event", "adopted"}, {"peer", gossip::short_name(ad->from)}, {"round", ad->round}});
      std::printf("joined a running swarm: took round %llu's state from %s\n",
                  static_cast<unsigned long long>(ad->round), gossip::short_name(ad->from).c_str());
    } else if (auto* m = std::get_if<gossip::Mixed>(&a)) {
      model_->write_params(driver_->theta());
      if (!m->late.empty()) log_.write({{"event", "late"}, {"round", m->round}, {"links", m->late.size()}});
    } else if (auto* r = std::get_if<gossip::Rejected>(&a)) {
      ++rejected_;
      rejected_total_.add({metrics_.peer_label(r->from), gossip::to_string(r->kind)});
      log_.write({{"event", "rejected"},
                  {"peer", gossip::short_name(r->from)},
                  {"kind", gossip::to_string(r->kind)},
                  {"reason", r->reason}});
    } else if (auto* d = std::get_if<gossip::Distrusted>(&a)) {
      log_.write({{"event", "distrusted"}, {"peer", gossip::short_name(d->peer)}, {"reason", d->reason}});
      cut_total_.add({metrics_.peer_label(d->peer)});
      std::fprintf(stderr, "cut the link to %s for good: %s\n", gossip::short_name(d->peer).c_str(),
                   d->reason.c_str());
      mailbox_.push_distrust(d->peer);
    }
  }
}

void PeerTraining::wait_for_state() {
  std::printf("waiting for a neighbour's state...\n");
  std::fflush(stdout);
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (driver_->fresh() && Clock::now() < deadline && !run::interrupted() && !mailbox_.failure())
    drain_events(Clock::now() + std::chrono::milliseconds(50));
  check_admitted();
  // A running swarm's snapshot may still come during the first round: it restarts the round.
  if (driver_->fresh()) std::printf("no neighbour's state within 30 s: starting from the initialisation\n");
  adopted_ = false;
}

void PeerTraining::on_event(TrainEvent& e) {
  if (auto* l = std::get_if<LinkEvent>(&e)) on_link(*l);
  if (auto* p = std::get_if<InPayload>(&e)) on_payload(*p);
}

void PeerTraining::drain_events(Clock::time_point deadline) {
  while (auto e = mailbox_.pop_event(deadline)) {
    on_event(*e);
    if (Clock::now() >= deadline) deadline = Clock::now();  // after the deadline: only what is queued
  }
}

void PeerTraining::gossip_round() {
  model_->read_params(theta_);
  drain_events(Clock::now());
  if (adopted_) return;  // the round restarts from the adopted state
  if (!ladder_.empty()) {
    const NetView v = mailbox_.view();
    const gossip::CodecChoice c = gossip::choose_codec(ladder_, n_, driver_->consensus().degree(),
                                                       v.uplink_bytes_per_s, a_.round_budget_s);
    driver_->consensus().set_codec(ladder_[c.index]);
  }
  // Mix with what the neighbours sent for this round, waiting for late ones up to the driver's
  // deadline: nobody waits long for a slow peer (CHOCO tolerates stale θ̂_j).
  const auto wait_start = Clock::now();
  driver_->local_steps_done(theta_, now_ms());
  drain_round_actions();
  while (driver_->phase() == gossip::RoundDriver::Phase::waiting && !run::interrupted()) {
    const gossip::Millis left = std::clamp<gossip::Millis>(*driver_->deadline() - now_ms(), 0, 50);
    if (auto e = mailbox_.pop_event(Clock::now() + std::chrono::milliseconds(left))) on_event(*e);
    driver_->tick(now_ms());
    drain_round_actions();
  }
  driver_->mix_now();  // interrupted: mix with what has arrived
  drain_round_actions();
  wait_s_ += seconds_since(wait_start);
}

void PeerTraining::wait_for_ring() {
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  std::printf("waiting for %d peers to form the ring...\n", a_.expect_peers);
  std::fflush(stdout);
  if (!mailbox_.wait_view(
          [&](const NetView& v) { return static_cast<int>(v.members.size()) + 1 >= a_.expect_peers; },
          deadline)) {
    check_admitted();
    throw std::runtime_error("only " + std::to_string(mailbox_.view().members.size() + 1) + " of " +
                             std::to_string(a_.expect_peers) + " peers appeared within 120 s");
  }
  const NetView v = mailbox_.view();
  ring_ = v.members;
  ring_.push_back(v.self);
  std::sort(ring_.begin(), ring_.end(), [](const auto& x, const auto& y) { return x.id < y.id; });
  ring_.resize(static_cast<size_t>(a_.expect_peers));
  const auto me = std::find_if(ring_.begin(), ring_.end(), [&](const auto& p) { return p.id == self_; });
  if (me == ring_.end()) throw std::runtime_error("this peer is not among the ring's first members by id");
  ring_rank_ = static_cast<int>(me - ring_.begin());
}

void PeerTraining::ring_sum(std::span<float> buf) {
  const int p = static_cast<int>(ring_.size());
  const uint64_t op = ring_op_++;
  gossip::RingAllReduce ring(ring_rank_, p, buf);
  auto send = [&](std::vector<gossip::RingAllReduce::Send> sends) {
    for (auto& s : sends)
      mailbox_.push_send(
          OutPayload{ring_[static_cast<size_t>(s.to_rank)], gossip::kRingEpoch, ring_seq_++,
                     wire::encode_train(gossip::RingSegment{op, s.step, std::move(s.payload)})});
  };
  send(ring.start());
  const auto wait_start = Clock::now();
  // A synchronous ring waits for its slowest member, however slow its compute: it gives up when
  // membership declares a member gone, or after kRingSilenceS without a segment.
  const auto silence = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(a_.wait_max_s, kRingSilenceS)));
  auto deadline = Clock::now() + silence;
  auto next_check = Clock::now();
  while (!ring.done()) {
    // Segments of this operation, in order; later operations' wait in the backlog.
    auto it =
        std::find_if(ring_backlog_.begin(), ring_backlog_.end(), [&](const auto& s) { return s.op == op; });
    if (it != ring_backlog_.end()) {
      gossip::RingSegment seg = std::move(*it);
      ring_backlog_.erase(it);
      send(ring.on_segment(seg.step, seg.codec_payload));
      deadline = Clock::now() + silence;
      continue;
    }
    if (Clock::now() >= next_check) {
      next_check = Clock::now() + std::chrono::seconds(1);
      const NetView v = mailbox_.view();
      for (const gossip::PeerInfo& m : ring_) {
        const bool live =
            m.id == self_ || std::any_of(v.members.begin(), v.members.end(),
                                         [&](const gossip::PeerInfo& x) { return x.id == m.id; });
        if (!live)
          throw RingBroken("all-reduce stopped: ring member " + gossip::short_name(m.id) +
                           " left the swarm or was declared dead");
      }
    }
    if (Clock::now() >= deadline)
      throw RingBroken("all-reduce stalled: no segment from the ring for " +
                       std::to_string(static_cast<int>(std::max(a_.wait_max_s, kRingSilenceS))) + " s");
    if (run::interrupted()) throw std::runtime_error("interrupted during an all-reduce");
    if (auto e = mailbox_.pop_event(std::min(deadline, Clock::now() + std::chrono::milliseconds(50))))
      on_event(*e);
  }
  wait_s_ += seconds_since(wait_start);
}

void PeerTraining::average_grads(ModelBackend& m) {
  std::vector<float>& g = start_;  // scratch: allreduce keeps no round start
  m.read_grads(g);
  ring_sum(g);
  const float inv = 1.0f / static_cast<float>(ring_.size());
  for (float& x : g) x *= inv;
  m.write_grads(g);
}

void PeerTraining::diloco_round() {
  model_->read_params(theta_);
  // Mean pseudo-gradient over all peers, then the same outer step everywhere.
  std::vector<float> delta(n_);
  for (size_t i = 0; i < n_; ++i) delta[i] = start_[i] - theta_[i];
  ring_sum(delta);
  const float inv = 1.0f / static_cast<float>(ring_.size());
  for (size_t i = 0; i < n_; ++i) theta_[i] = start_[i] - delta[i] * inv;
  if (!schedule_.warming_up(round_))  // warm-up rounds average
    outer_.step(start_, theta_, static_cast<float>(a_.outer_lr), static_cast<float>(a_.outer_momentum));
  model_->write_params(theta_);
}

double PeerTraining::val_loss() {
  return evaluate(
             *model_, val_.size(), [&](size_t s, size_t k, int32_t* o) { val_.copy(s, k, o); }, context_,
             static_cast<size_t>(a_.eval_windows))
      .loss;
}

void PeerTraining::save(const std::string& why) {
  std::vector<float> m(n_), v(n_);
  model_->read_params(theta_);
  model_->read_moments(m, v);
  json state = trainer_.state();
  state["round"] = round();
  state["algo"] = a_.algo;
  state["tokenizer"] = train_.tokenizer();
  const fs::path dir = checkpoint_path(a_.out, trainer_.steps_done());
  gossip::AlgorithmState algo{round(), {}, {}};
  const auto momentum = driver_ ? driver_->momentum() : outer_.momentum();
  algo.momentum.assign(momentum.begin(), momentum.end());
  if (driver_) {
    const auto copy = driver_->consensus().public_copy();
    algo.public_copy.assign(copy.begin(), copy.end());
  }
  save_checkpoint(dir, cfg_, model_->layout(), theta_, m, v, state,
                  {{kAlgorithmStateFile, gossip::encode_algorithm_state(algo)}});
  publish_checkpoint(a_.out, dir, 3);
  log_.write({{"event", "checkpoint"}, {"round", round()}, {"path", dir.string()}, {"reason", why}});
}

json PeerTraining::run() {
  initialise();
  const bool ring = a_.algo == "allreduce" || a_.algo == "diloco";
  if (ring) wait_for_ring();
  if (driver_ && driver_->fresh() && !a_.join.empty()) wait_for_state();
  std::printf("peer %s: %s, %s (%.2fM params), %s, %lld steps, batch %d x %d\n",
              gossip::short_name(self_).c_str(), a_.algo.c_str(), cfg_.describe().c_str(),
              cfg_.num_params() / 1e6, schedule_.describe().c_str(), static_cast<long long>(a_.train.steps),
              a_.batch.batch, context_);
  std::fflush(stdout);
  std::string status = "finished";
  double final_val = NAN;
  while (trainer_.steps_done() < a_.train.steps) {
    check_admitted();
    if (std::string why = stop_.reason(); !why.empty()) {
      status = why;
      break;
    }
    const auto round_start = Clock::now();
    const double wait_before = wait_s_;
    const uint64_t r = round();
    if (a_.algo == "diloco") model_->read_params(start_);
    const int64_t steps_before = trainer_.steps_done();
    try {
      inner_steps(schedule_.steps_in(r));
      if (trainer_.steps_done() == steps_before) continue;  // interrupted before a step
      if (driver_) gossip_round();
      if (a_.algo == "diloco") diloco_round();
      if (adopted_) {  // a running swarm's state replaced ours: the round starts again from it
        adopted_ = false;
        continue;
      }
    } catch (const std::runtime_error& e) {
      // A broken ring, a diverged model, a failing device: what was learned so far is kept (if it is
      // finite) and the summary says why the run stopped.
      status = std::string("stopped: ") + e.what();
      std::fprintf(stderr, "%s; saving and leaving\n", status.c_str());
      break;
    }
    const double round_s = seconds_since(round_start);
    const int64_t steps = trainer_.steps_done() - steps_before;
    const NetView v = mailbox_.view();
    model_->read_params(theta_);
    json e = {{"event", "round"},
              {"round", r},
              {"step", trainer_.steps_done()},
              {"loss", window_loss_ / std::max<int64_t>(1, window_steps_)},
              {"tokens", trainer_.tokens_done()},
              {"tokens_per_s", static_cast<double>(steps) * a_.batch.batch * context_ / round_s},
              {"round_s", round_s},
              {"wait_s", wait_s_ - wait_before},
              {"bytes_sent", v.bytes_sent},
              {"bytes_received", v.bytes_received},
              {"neighbours", driver_ ? driver_->links() : 0},
              {"rejected", rejected_},
              {"consensus_distance", driver_ ? driver_->consensus().consensus_distance(theta_) : 0.0}};
    window_loss_ = 0;
    window_steps_ = 0;
    const bool last = trainer_.steps_done() >= a_.train.steps;
    if (last || (a_.eval_every > 0 && (r + 1) % static_cast<uint64_t>(a_.eval_every) == 0)) {
      final_val = val_loss();
      e["val_loss"] = final_val;
    }
    log_.write(e);
    std::printf(
        "round %4llu | step %6lld | loss %.4f | val %s | %.0f tok/s | wait %.2fs | sent %.2f MB | links "
        "%zu\n",
        static_cast<unsigned long long>(r), static_cast<long long>(trainer_.steps_done()),
        e["loss"].get<double>(), e.contains("val_loss") ? std::to_string(final_val).c_str() : "-",
        e["tokens_per_s"].get<double>(), e["wait_s"].get<double>(), v.bytes_sent / 1e6,
        e["neighbours"].get<size_t>());
    std::fflush(stdout);
    if (!driver_) ++round_;  // the driver counts its own rounds
    if (a_.ckpt_every > 0 && round() % static_cast<uint64_t>(a_.ckpt_every) == 0 && !last) save("periodic");
  }
  model_->read_params(theta_);
  const bool finite = std::all_of(theta_.begin(), theta_.end(), [](float x) { return std::isfinite(x); });
  if (std::isnan(final_val) && finite) final_val = val_loss();
  if (finite) save(status);
  const NetView v = mailbox_.view();
  return {{"status", status},
          {"algo", a_.algo},
          {"codec", a_.algo == "gossip" ? a_.codec : ""},
          {"rounds", round()},
          {"steps", trainer_.steps_done()},
          {"tokens", trainer_.tokens_done()},
          {"final_train_loss", last_loss_},
          {"final_val_loss", final_val},
          {"bytes_sent", v.bytes_sent},
          {"bytes_received", v.bytes_received},
          {"wait_s", wait_s_},
          {"wall_s", stop_.elapsed_s()},
          {"rejected", rejected_},
          {"rollbacks", rollbacks_},
          {"links_cut", driver_ ? driver_->counters().distrusted : 0},
          {"resyncs_served", driver_ ? driver_->counters().resyncs_served : 0}};
}

}  // namespace

json run_peer_training(const PeerArgs& args, const PeerId& self, PeerMailbox& mailbox, run::JsonlLog& log,
                       net::MetricsRegistry& metrics) {
  PeerTraining t(args, self, mailbox, log, metrics);
  return t.run();
}

}  // namespace murmur::peer

#include "node/peer_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "gossip/algorithm_state.h"
#include "gossip/codec_policy.h"
#include "gossip/consensus.h"
#include "gossip/outer_optimizer.h"
#include "gossip/peer_id.h"
#include "gossip/ring_allreduce.h"
#include "model/checkpoint.h"
#include "model/init.h"
#include "model/trainer.h"
#include "node/interrupt.h"
#include "node/peer_model.h"
#include "node/protocol.h"

namespace murmur {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using gossip::PeerId;

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

class PeerTraining {
 public:
  PeerTraining(const PeerArgs& a, const PeerId& self, PeerMailbox& mailbox, JsonlLog& log)
      : a_(a),
        self_(self),
        mailbox_(mailbox),
        log_(log),
        cfg_(peer_model_config(a)),
        train_(a.data, "train"),
        val_(a.data, "val"),
        context_(peer_context(a, cfg_)),
        model_(make_backend(parse_device(a.device), cfg_, a.batch, context_, a.threads)),
        trainer_(*model_, train_, train_options()),
        n_(model_->layout().total()),
        theta_(n_),
        start_(n_),
        consensus_(n_, consensus_config(), a.seed ^ (uint64_t{a.peer_index} << 32)),
        outer_(n_) {
    if (a.round_budget_s > 0) ladder_ = gossip::parse_codec_ladder(a.codec_ladder, n_);
  }

  json run();

 private:
  TrainOptions train_options() {
    TrainOptions o = peer_train_options(a_, context_);
    if (a_.algo == "allreduce") o.reduce_grads = [this](ModelBackend& m) { average_grads(m); };
    return o;
  }
  gossip::ConsensusConfig consensus_config() const {
    gossip::ConsensusConfig c;
    c.gamma = a_.gamma;
    c.codec = a_.codec;
    c.clip_radius = a_.clip_radius;
    return c;
  }

  void initialise();
  void restore_algorithm_state(const CheckpointData& ck);
  void inner_steps(int64_t count);
  void drain_events(Clock::time_point deadline);
  void on_event(TrainEvent& e);
  void on_link(const LinkEvent& e);
  struct Link;
  void request_snapshot(Link& l);
  void on_payload(InPayload& p);
  void adopt(const PeerId& from, const gossip::Delta& snapshot);
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

  struct Link {
    gossip::PeerInfo peer;
    uint64_t epoch = 0;
    uint64_t send_seq = 0;
    int64_t last_round = -1;  // newest round of theirs applied to θ̂_j
    bool resync_pending = false;
    bool closing = false;  // went down after sending this round's delta: mixes once more, then goes
  };

  const PeerArgs& a_;
  PeerId self_;
  PeerMailbox& mailbox_;
  JsonlLog& log_;
  ModelConfig cfg_;
  TokenDataset train_, val_;
  int context_;
  std::unique_ptr<ModelBackend> model_;
  Trainer trainer_;
  size_t n_;
  std::vector<float> theta_, start_;
  gossip::Consensus consensus_;
  gossip::OuterOptimizer outer_;
  std::map<PeerId, Link> links_;
  std::vector<compress::CodecSpec> ladder_;  // --round-budget-s: codecs fine to coarse
  uint64_t round_ = 0;
  bool fresh_ = true;  // has not trained or adopted state yet: may adopt a neighbour's snapshot

  // ring all-reduce (allreduce, diloco)
  std::vector<gossip::PeerInfo> ring_;  // every peer, ordered by id; fixed at start
  int ring_rank_ = 0;
  uint64_t ring_op_ = 0;
  uint64_t ring_seq_ = 0;
  std::deque<gossip::RingSegment> ring_backlog_;  // segments of operations not started yet

  // metrics
  double wait_s_ = 0, window_loss_ = 0, log_loss_ = 0;
  int64_t window_steps_ = 0, log_steps_ = 0;
  uint64_t rejected_ = 0, resyncs_served_ = 0;
  Clock::time_point t0_ = Clock::now();
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
    fresh_ = false;
    restore_algorithm_state(ck);
    std::printf("resumed from %s at round %llu, step %lld\n", resolve_checkpoint(a_.resume).c_str(),
                static_cast<unsigned long long>(round_), static_cast<long long>(trainer_.steps_done()));
    return;
  }
  // The same seed on every peer: all replicas start from one point.
  init_gpt2_params(theta_, model_->layout(), cfg_, a_.seed);
  model_->write_params(theta_);
  consensus_.reset_self(theta_);
}

// The outer momentum and the public copy θ̂_i (θ_i − θ̂_i is what error
// compensation still owes the neighbours); the neighbours' copies are not kept:
// every link starts again from a snapshot.
void PeerTraining::restore_algorithm_state(const CheckpointData& ck) {
  const auto it = ck.extras.find(kAlgorithmStateFile);
  if (it == ck.extras.end()) {
    consensus_.reset_self(theta_);
    return;
  }
  const gossip::AlgorithmState st = gossip::decode_algorithm_state(it->second, n_);
  if (!st.momentum.empty()) outer_.restore(st.momentum);
  consensus_.reset_self(st.public_copy.empty() ? std::span<const float>(theta_) : st.public_copy);
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
  for (int64_t i = 0; i < count && trainer_.steps_done() < a_.steps && !interrupted(); ++i) {
    const StepStats s = trainer_.step();
    step_seconds_ = s.seconds;
    throttle(s.tokens);
    if (!std::isfinite(s.loss))
      throw std::runtime_error("loss became " + std::to_string(s.loss) + " at step " +
                               std::to_string(s.step) + "; lower --lr?");
    window_loss_ += s.loss;
    ++window_steps_;
    log_steps(s);
    last_loss_ = s.loss;
    fresh_ = false;
    // Keep the network side's queues moving between steps (link events, snapshots).
    drain_events(Clock::now());
  }
}

void PeerTraining::on_link(const LinkEvent& e) {
  if (a_.algo != "gossip") return;  // only gossip trains over neighbour links
  if (!e.up) {
    auto it = links_.find(e.peer.id);
    if (it == links_.end() || it->second.epoch != e.epoch) return;
    // A neighbour that leaves right after its round (its last one, typically) has already mixed
    // with our public copy: keep its copy for our mix of that round, or the pair's exchange would
    // be one-sided and the swarm's average would move.
    if (it->second.last_round >= static_cast<int64_t>(round_)) {
      it->second.closing = true;
      return;
    }
    consensus_.link_down(e.peer.id);
    links_.erase(it);
    return;
  }
  consensus_.link_up(e.peer.id, e.epoch);
  Link& l = links_[e.peer.id];
  l = Link{e.peer, e.epoch, 0, -1, false};
  // Every link starts with a snapshot of our public copy θ̂_i; deltas follow in order.
  const gossip::Delta snap = consensus_.make_snapshot(round_);
  mailbox_.push_send(OutPayload{l.peer, l.epoch, l.send_seq++, node::encode_train(snap)});
}

void PeerTraining::on_payload(InPayload& p) {
  node::Decoded<gossip::TrainMessage> decoded = node::decode_train(p.bytes);
  if (!decoded) {
    ++rejected_;
    log_.write({{"event", "rejected"}, {"peer", gossip::short_name(p.from)}, {"reason", decoded.error}});
    return;
  }
  gossip::TrainMessage& msg = *decoded.value;
  if (auto* seg = std::get_if<gossip::RingSegment>(&msg)) {
    if (p.epoch == gossip::kRingEpoch) ring_backlog_.push_back(std::move(*seg));
    return;
  }
  auto it = links_.find(p.from);
  if (it == links_.end() || it->second.epoch != p.epoch) return;  // a link that is gone: stale traffic
  Link& l = it->second;
  if (std::holds_alternative<gossip::ResyncRequest>(msg)) {
    if (consensus_.on_control(p.from, p.seq)) request_snapshot(l);
    mailbox_.push_send(
        OutPayload{l.peer, l.epoch, l.send_seq++, node::encode_train(consensus_.make_full_snapshot(round_))});
    ++resyncs_served_;
    return;
  }
  auto& d = std::get<gossip::Delta>(msg);
  // A fresh peer joining a running swarm takes its first neighbour's state
  // instead of starting from scratch (late join); a swarm as young as itself
  // has nothing to give.
  if (d.snapshot && fresh_) {
    fresh_ = false;
    if (d.round > round_ + 1) adopt(p.from, d);
  }
  const gossip::ReceiveResult r = consensus_.on_delta(p.from, p.seq, d);
  if (r.accepted) {
    l.last_round = gossip::newest_round(d);
  } else if (r.status != gossip::ReceiveStatus::duplicate) {
    ++rejected_;
    log_.write({{"event", "rejected"}, {"peer", gossip::short_name(p.from)}, {"reason", r.reason}});
  }
  if (r.resync) request_snapshot(l);
  if (r.accepted && d.snapshot) l.resync_pending = false;
}

// Our mirror of θ̂_j is invalid: ask for a snapshot once (deltas are dropped until it arrives; a lost
// request heals when membership re-samples the link).
void PeerTraining::request_snapshot(Link& l) {
  if (l.resync_pending) return;
  l.resync_pending = true;
  mailbox_.push_send(
      OutPayload{l.peer, l.epoch, l.send_seq++, node::encode_train(gossip::ResyncRequest{round_})});
}

void PeerTraining::adopt(const PeerId& from, const gossip::Delta& snapshot) {
  std::vector<float> snap(n_, 0.0f);
  compress::decode(snapshot.codec_payload, snap);  // validated: sizes, NaN/Inf
  theta_ = snap;
  model_->write_params(theta_);
  consensus_.reset_self(theta_);
  round_ = snapshot.round;
  // The LR schedule continues where the swarm is; the data stream is this peer's own.
  json st = trainer_.state();
  st["step"] = std::min<int64_t>(static_cast<int64_t>(snapshot.round) * a_.inner_steps, a_.steps - 1);
  trainer_.restore(st);
  // Neighbours mirror our public copy, which just changed: send each a new snapshot.
  for (auto& [id, l] : links_)
    mailbox_.push_send(
        OutPayload{l.peer, l.epoch, l.send_seq++, node::encode_train(consensus_.make_full_snapshot(round_))});
  log_.write({{"event", "adopted"}, {"peer", gossip::short_name(from)}, {"round", round_}});
  std::printf("joined a running swarm: took round %llu's state from %s\n",
              static_cast<unsigned long long>(round_), gossip::short_name(from).c_str());
}

void PeerTraining::wait_for_state() {
  std::printf("waiting for a neighbour's state...\n");
  std::fflush(stdout);
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (fresh_ && Clock::now() < deadline && !interrupted())
    drain_events(Clock::now() + std::chrono::milliseconds(50));
  if (fresh_) std::printf("no neighbour's state within 30 s: starting from the initialisation\n");
  fresh_ = false;
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
  outer_.step(start_, theta_, static_cast<float>(a_.outer_lr), static_cast<float>(a_.outer_momentum));
  drain_events(Clock::now());
  if (!ladder_.empty()) {
    const NetView v = mailbox_.view();
    const gossip::CodecChoice c =
        gossip::choose_codec(ladder_, n_, consensus_.degree(), v.uplink_bytes_per_s, a_.round_budget_s);
    consensus_.set_codec(ladder_[c.index]);
  }
  const gossip::Delta d = consensus_.make_delta(theta_, round_);
  const std::vector<uint8_t> bytes = node::encode_train(d);
  for (auto& [id, l] : links_)
    if (!l.closing) mailbox_.push_send(OutPayload{l.peer, l.epoch, l.send_seq++, bytes});
  // Mix with what the neighbours sent for this round, waiting for late ones up
  // to a deadline: nobody waits long for a slow peer (CHOCO tolerates stale θ̂_j).
  const auto wait_start = Clock::now();
  const auto deadline =
      wait_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a_.wait_max_s));
  auto all_in = [&] {
    return std::all_of(links_.begin(), links_.end(),
                       [&](const auto& kv) { return kv.second.last_round >= static_cast<int64_t>(round_); });
  };
  while (!all_in() && Clock::now() < deadline && !interrupted()) {
    if (auto e = mailbox_.pop_event(std::min(deadline, Clock::now() + std::chrono::milliseconds(50))))
      on_event(*e);
  }
  wait_s_ += seconds_since(wait_start);
  consensus_.mix(theta_);
  model_->write_params(theta_);
  for (auto it = links_.begin(); it != links_.end();) {
    if (!it->second.closing) {
      ++it;
      continue;
    }
    consensus_.link_down(it->first);
    it = links_.erase(it);
  }
}

void PeerTraining::wait_for_ring() {
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  std::printf("waiting for %d peers to form the ring...\n", a_.expect_peers);
  std::fflush(stdout);
  if (!mailbox_.wait_view(
          [&](const NetView& v) { return static_cast<int>(v.members.size()) + 1 >= a_.expect_peers; },
          deadline))
    throw std::runtime_error("only " + std::to_string(mailbox_.view().members.size() + 1) + " of " +
                             std::to_string(a_.expect_peers) + " peers appeared within 120 s");
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
                     node::encode_train(gossip::RingSegment{op, s.step, std::move(s.payload)})});
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
    if (interrupted()) throw std::runtime_error("interrupted during an all-reduce");
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
  state["round"] = round_;
  state["algo"] = a_.algo;
  state["tokenizer"] = train_.tokenizer();
  const fs::path dir = checkpoint_path(a_.out, trainer_.steps_done());
  gossip::AlgorithmState algo{round_, {}, {}};
  const auto momentum = outer_.momentum();
  algo.momentum.assign(momentum.begin(), momentum.end());
  if (a_.algo == "gossip") {
    const auto copy = consensus_.public_copy();
    algo.public_copy.assign(copy.begin(), copy.end());
  }
  save_checkpoint(dir, cfg_, model_->layout(), theta_, m, v, state,
                  {{kAlgorithmStateFile, gossip::encode_algorithm_state(algo)}});
  publish_checkpoint(a_.out, dir, 3);
  log_.write({{"event", "checkpoint"}, {"round", round_}, {"path", dir.string()}, {"reason", why}});
}

json PeerTraining::run() {
  initialise();
  const bool ring = a_.algo == "allreduce" || a_.algo == "diloco";
  if (ring) wait_for_ring();
  if (a_.algo == "gossip" && fresh_ && !a_.join.empty()) wait_for_state();
  std::printf("peer %s: %s, %s (%.2fM params), H=%lld, %lld steps, batch %d x %d\n",
              gossip::short_name(self_).c_str(), a_.algo.c_str(), cfg_.describe().c_str(),
              cfg_.num_params() / 1e6, static_cast<long long>(a_.inner_steps),
              static_cast<long long>(a_.steps), a_.batch, context_);
  std::fflush(stdout);
  std::string status = "finished";
  double final_val = NAN;
  while (trainer_.steps_done() < a_.steps) {
    if (interrupted()) {
      status = "interrupted";
      break;
    }
    if (a_.max_seconds > 0 && seconds_since(t0_) >= a_.max_seconds) {
      status = "time limit";
      break;
    }
    const auto round_start = Clock::now();
    const double wait_before = wait_s_;
    model_->read_params(start_);
    const int64_t steps_before = trainer_.steps_done();
    try {
      inner_steps(a_.inner_steps);
      if (trainer_.steps_done() == steps_before) continue;  // interrupted before a step
      if (a_.algo == "gossip") gossip_round();
      if (a_.algo == "diloco") diloco_round();
    } catch (const RingBroken& e) {
      // A synchronous baseline cannot go on without its ring; what it learned so far is kept.
      status = std::string("stopped: ") + e.what();
      std::fprintf(stderr, "%s; saving and leaving\n", status.c_str());
      break;
    }
    const double round_s = seconds_since(round_start);
    const int64_t steps = trainer_.steps_done() - steps_before;
    const NetView v = mailbox_.view();
    model_->read_params(theta_);
    json e = {{"event", "round"},
              {"round", round_},
              {"step", trainer_.steps_done()},
              {"loss", window_loss_ / std::max<int64_t>(1, window_steps_)},
              {"tokens", trainer_.tokens_done()},
              {"tokens_per_s", static_cast<double>(steps) * a_.batch * context_ / round_s},
              {"round_s", round_s},
              {"wait_s", wait_s_ - wait_before},
              {"bytes_sent", v.bytes_sent},
              {"bytes_received", v.bytes_received},
              {"neighbours", links_.size()},
              {"rejected", rejected_},
              {"consensus_distance", a_.algo == "gossip" ? consensus_.consensus_distance(theta_) : 0.0}};
    window_loss_ = 0;
    window_steps_ = 0;
    const bool last = trainer_.steps_done() >= a_.steps;
    if (last || (a_.eval_every > 0 && (round_ + 1) % static_cast<uint64_t>(a_.eval_every) == 0)) {
      final_val = val_loss();
      e["val_loss"] = final_val;
    }
    log_.write(e);
    std::printf(
        "round %4llu | step %6lld | loss %.4f | val %s | %.0f tok/s | wait %.2fs | sent %.2f MB | links "
        "%zu\n",
        static_cast<unsigned long long>(round_), static_cast<long long>(trainer_.steps_done()),
        e["loss"].get<double>(), e.contains("val_loss") ? std::to_string(final_val).c_str() : "-",
        e["tokens_per_s"].get<double>(), e["wait_s"].get<double>(), v.bytes_sent / 1e6, links_.size());
    std::fflush(stdout);
    ++round_;
    if (a_.ckpt_every > 0 && round_ % static_cast<uint64_t>(a_.ckpt_every) == 0 && !last) save("periodic");
  }
  if (std::isnan(final_val)) final_val = val_loss();
  save(status);
  const NetView v = mailbox_.view();
  return {{"status", status},
          {"algo", a_.algo},
          {"codec", a_.algo == "gossip" ? a_.codec : ""},
          {"rounds", round_},
          {"steps", trainer_.steps_done()},
          {"tokens", trainer_.tokens_done()},
          {"final_train_loss", last_loss_},
          {"final_val_loss", final_val},
          {"bytes_sent", v.bytes_sent},
          {"bytes_received", v.bytes_received},
          {"wait_s", wait_s_},
          {"wall_s", seconds_since(t0_)},
          {"rejected", rejected_},
          {"resyncs_served", resyncs_served_}};
}

}  // namespace

json run_peer_training(const PeerArgs& args, const PeerId& self, PeerMailbox& mailbox, JsonlLog& log) {
  PeerTraining t(args, self, mailbox, log);
  return t.run();
}

}  // namespace murmur

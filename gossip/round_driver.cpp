#include "gossip/round_driver.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "compress/codec.h"

namespace murmur::gossip {

namespace {

RoundConfig checked(RoundConfig c) {
  if (!std::isfinite(c.outer_lr) || !std::isfinite(c.outer_momentum))
    throw std::invalid_argument("outer lr and momentum must be finite");
  if (c.wait_max < 0) throw std::invalid_argument("the round's wait must be >= 0 ms");
  c.schedule.validate();
  return c;
}

void check_size(std::span<const float> x, size_t n, const char* what) {
  if (x.size() != n)
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(x.size()) + " values, expected " +
                                std::to_string(n));
}

bool all_finite(std::span<const float> x) {
  return std::all_of(x.begin(), x.end(), [](float v) { return std::isfinite(v); });
}

}  // namespace

const char* to_string(RejectKind k) {
  switch (k) {
    case RejectKind::malformed:
      return "malformed";
    case RejectKind::outlier:
      return "outlier";
    case RejectKind::stale:
      return "stale";
    case RejectKind::far:
      return "far";
    case RejectKind::gap:
      return "gap";
    case RejectKind::nonfinite:
      return "nonfinite";
    case RejectKind::diverged:
      return "diverged";
  }
  return "?";
}

RoundDriver::RoundDriver(size_t n, RoundConfig cfg, uint64_t seed)
    : n_(n),
      cfg_(checked(std::move(cfg))),
      consensus_(n, cfg_.consensus, seed),
      outer_(n),
      theta_(n, 0.0f),
      work_(n, 0.0f) {}

void RoundDriver::start(std::span<const float> theta) {
  resume(theta, theta, {}, 0);
  fresh_ = true;
}

void RoundDriver::resume(std::span<const float> theta, std::span<const float> public_copy,
                         std::span<const float> momentum, uint64_t round) {
  check_size(theta, n_, "resume: theta");
  if (!momentum.empty()) outer_.restore(momentum);
  std::copy(theta.begin(), theta.end(), theta_.begin());
  consensus_.reset_self(public_copy);
  round_ = round;
  phase_ = Phase::computing;
  fresh_ = false;
  premix_valid_ = false;
  for (const auto& [peer, l] : links_) consensus_.link_down(peer);
  links_.clear();
}

void RoundDriver::send(const PeerId& to, Link& l, std::shared_ptr<const TrainMessage> msg) {
  actions_.push_back(SendTrain{to, l.epoch, l.send_seq++, std::move(msg)});
}

void RoundDriver::send_full_snapshot(const PeerId& to, Link& l) {
  send(to, l, std::make_shared<const TrainMessage>(consensus_.make_full_snapshot(round_)));
}

// Our mirror of θ̂_j is invalid: ask once (its deltas are dropped until the snapshot comes; a lost request
// heals when membership re-samples the link).
void RoundDriver::request_snapshot(const PeerId& to, Link& l) {
  if (l.resync_pending) return;
  l.resync_pending = true;
  ++counters_.resyncs_requested;
  send(to, l, std::make_shared<const TrainMessage>(ResyncRequest{round_}));
}

void RoundDriver::reject(const PeerId& from, RejectKind kind, std::string reason) {
  ++counters_.rejected;
  actions_.push_back(Rejected{from, kind, std::move(reason)});
  if (kind == RejectKind::gap || kind == RejectKind::nonfinite) return;
  auto it = links_.find(from);
  if (it != links_.end()) it->second.strikes.push_back(round_);
}

// Called where no Link reference is held (the strikes were counted on the links): a link with too many
// strikes in the window is cut now, whatever the round's phase.
void RoundDriver::cut_struck_links() {
  if (cfg_.strikes_to_cut == 0) return;
  for (auto it = links_.begin(); it != links_.end();) {
    std::vector<uint64_t>& st = it->second.strikes;
    std::erase_if(st, [&](uint64_t r) { return r + cfg_.strike_window <= round_; });
    if (st.size() < cfg_.strikes_to_cut) {
      ++it;
      continue;
    }
    distrusted_.insert(it->first);
    ++counters_.distrusted;
    actions_.push_back(Distrusted{
        it->first, it->second.epoch,
        std::to_string(st.size()) + " strikes in " + std::to_string(cfg_.strike_window) + " rounds"});
    consensus_.link_down(it->first);
    it = links_.erase(it);
  }
}

void RoundDriver::link_up(const PeerId& peer, uint64_t epoch) {
  auto it = links_.find(peer);
  if (it != links_.end() && it->second.epoch == epoch) return;  // repeated event
  if (distrusts(peer)) {
    actions_.push_back(Distrusted{peer, epoch, "distrusted earlier"});
    return;
  }
  consensus_.link_up(peer, epoch);
  Link& l = links_[peer];
  l = Link{};
  l.epoch = epoch;
  // Every link starts with a snapshot of our public copy θ̂_i; deltas follow in order.
  send(peer, l, std::make_shared<const TrainMessage>(consensus_.make_snapshot(round_)));
}

void RoundDriver::link_down(const PeerId& peer, uint64_t epoch, Millis now) {
  auto it = links_.find(peer);
  if (it == links_.end() || it->second.epoch != epoch) return;
  if (it->second.last_round >= static_cast<int64_t>(round_)) {
    it->second.closing = true;  // see the header: mixes this round, then goes
    return;
  }
  consensus_.link_down(peer);
  links_.erase(it);
  mix_if_ready(now);  // it may have been the one the round waited for
}

void RoundDriver::on_message(const PeerId& from, uint64_t epoch, uint64_t seq, const TrainMessage& msg,
                             Millis now) {
  auto it = links_.find(from);
  if (it == links_.end() || it->second.epoch != epoch) return;  // a link that is gone: stale traffic
  Link& l = it->second;
  if (std::holds_alternative<ResyncRequest>(msg)) {
    if (consensus_.on_control(from, seq)) request_snapshot(from, l);
    send_full_snapshot(from, l);
    ++counters_.resyncs_served;
    return;
  }
  if (const auto* d = std::get_if<Delta>(&msg)) {
    on_delta(from, l, seq, *d);
  } else {
    if (consensus_.on_control(from, seq)) request_snapshot(from, l);
    reject(from, RejectKind::malformed, "a ring all-reduce segment on a neighbour link");
  }
  cut_struck_links();
  mix_if_ready(now);
}

void RoundDriver::on_delta(const PeerId& from, Link& l, uint64_t seq, const Delta& d) {
  // A fresh peer joining a running swarm takes its first neighbour's state instead of starting from
  // scratch; a swarm as young as itself has nothing to give.
  if (d.snapshot && fresh_) {
    fresh_ = false;
    if (d.round > round_ + 1) adopt(from, d);
  }
  // A sender's deltas carry increasing rounds; an older one repeats an increment (or is a replay).
  if (!d.snapshot && static_cast<int64_t>(d.round) <= l.last_round) {
    if (consensus_.on_control(from, seq)) request_snapshot(from, l);
    reject(from, RejectKind::stale,
           "delta of round " + std::to_string(d.round) + " after round " + std::to_string(l.last_round));
    return;
  }
  const ReceiveResult r = consensus_.on_delta(from, seq, d);
  if (r.accepted) {
    l.last_round = newest_round(d);
    if (d.snapshot) l.resync_pending = false;
  } else if (r.status == ReceiveStatus::rejected) {
    reject(from, RejectKind::malformed, r.reason);
  } else if (r.status == ReceiveStatus::outlier) {
    reject(from, RejectKind::outlier, r.reason);
  } else if (r.status == ReceiveStatus::needs_snapshot) {
    reject(from, RejectKind::gap, r.reason);
  }
  if (r.resync) request_snapshot(from, l);
}

void RoundDriver::adopt(const PeerId& from, const Delta& snapshot) {
  try {
    compress::decode(snapshot.codec_payload, work_);  // validated: size, NaN/Inf
  } catch (const compress::DecodeError& e) {
    reject(from, RejectKind::malformed, std::string("snapshot to adopt: ") + e.what());
    return;
  }
  std::swap(theta_, work_);
  premix_valid_ = false;
  consensus_.reset_self(theta_);
  round_ = snapshot.round;
  actions_.push_back(Adopted{from, round_});
  // Neighbours mirror our public copy, which just changed.
  for (auto& [peer, l] : links_) send_full_snapshot(peer, l);
}

void RoundDriver::local_steps_done(std::span<const float> theta_after, Millis now) {
  if (phase_ != Phase::computing) throw std::logic_error("local_steps_done while the round waits to mix");
  check_size(theta_after, n_, "local_steps_done");
  if (!all_finite(theta_after)) throw std::domain_error("local_steps_done: the parameters hold NaN or Inf");
  premix_valid_ = false;
  if (cfg_.schedule.warmup_rounds() > 0 && round_ == uint64_t(cfg_.schedule.warmup_rounds()))
    consensus_.forget_scale();  // the first long round with the outer step: updates grow at once
  std::copy(theta_after.begin(), theta_after.end(), work_.begin());
  if (cfg_.outer_after_mix)
    start_.assign(theta_.begin(), theta_.end());
  else if (!cfg_.schedule.warming_up(round_))
    outer_.step(theta_, work_, static_cast<float>(cfg_.outer_lr), static_cast<float>(cfg_.outer_momentum));
  auto delta = std::make_shared<const TrainMessage>(consensus_.make_delta(work_, round_));  // checks NaN
  std::swap(theta_, work_);
  fresh_ = false;
  for (auto& [peer, l] : links_)
    if (!l.closing) send(peer, l, delta);
  phase_ = Phase::waiting;
  deadline_ = now + cfg_.wait_max;
  mix_if_ready(now);
}

void RoundDriver::tick(Millis now) {
  if (phase_ == Phase::waiting && now >= deadline_) mix();
}

void RoundDriver::mix_now() {
  if (phase_ == Phase::waiting) mix();
}

bool RoundDriver::rollback() {
  if (phase_ != Phase::computing || !premix_valid_) return false;
  std::swap(theta_, work_);
  premix_valid_ = false;
  ++counters_.rollbacks;
  if (heaviest_) {
    reject(*heaviest_, RejectKind::diverged, "training diverged after mixing its copy: rolled back");
    cut_struck_links();
  }
  return true;
}

bool RoundDriver::all_in() const {
  return std::all_of(links_.begin(), links_.end(),
                     [&](const auto& kv) { return kv.second.last_round >= static_cast<int64_t>(round_); });
}

void RoundDriver::mix_if_ready(Millis now) {
  if (phase_ == Phase::waiting && (all_in() || now >= deadline_)) mix();
}

void RoundDriver::mix() {
  std::copy(theta_.begin(), theta_.end(), work_.begin());
  Mixed m{round_, consensus_.mix(theta_), {}};
  for (const PeerId& p : m.report.far)
    reject(p, RejectKind::far,
           "pull clipped to under a quarter (radius " + std::to_string(m.report.radius) + ")");
  premix_valid_ = true;
  heaviest_ = m.report.heaviest;
  if (!all_finite(theta_)) {  // only overflow of huge but finite copies gets here: keep the round's θ
    std::swap(theta_, work_);
    premix_valid_ = false;
    ++counters_.mixes_undone;
    reject(PeerId{}, RejectKind::nonfinite, "mixing would leave NaN/Inf in the parameters: undone");
  }
  if (cfg_.outer_after_mix && start_.size() == n_ && !cfg_.schedule.warming_up(round_))
    outer_.step(start_, theta_, static_cast<float>(cfg_.outer_lr), static_cast<float>(cfg_.outer_momentum));
  for (auto it = links_.begin(); it != links_.end();) {
    if (it->second.last_round < static_cast<int64_t>(round_)) m.late.push_back(it->first);
    if (!it->second.closing) {
      ++it;
      continue;
    }
    consensus_.link_down(it->first);
    it = links_.erase(it);
  }
  counters_.late_links += m.late.size();
  actions_.push_back(std::move(m));
  ++round_;
  phase_ = Phase::computing;
  cut_struck_links();
}

}  // namespace murmur::gossip

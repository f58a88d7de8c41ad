// The gossip training round of one peer, sans-IO: everything that keeps decentralized training correct
// around the numeric core (Consensus), written once for every driver: the peer process
// (node/peer/training.cpp), the discrete-event simulator (netem/simulator.cpp) and the tests' fake networks.
//
// A round r (docs/algorithm.md, "One round of peer i"):
//   computing  the driver runs the round's local steps (RoundSchedule::steps_in) from theta(); a running
//              swarm's snapshot may arrive first and be adopted (late join), which restarts the round
//              from the adopted state
//   local_steps_done(θ')
//              outer Nesterov step on Δ = theta() − θ' (none in warm-up rounds), q = C(θ − θ̂) to
//              every link (Consensus)
//   waiting    until every link holds the neighbour's round-r delta, or the deadline (wait_max) passes
//   mixed      θ += γ Σ w (θ̂_j − θ̂_i); theta() is round r+1's start
//
// What it owns besides the numbers:
//   - per-link epochs and sequence numbers (one sequence per direction and link epoch, without gaps);
//   - the snapshot a new link starts with (by digest while θ̂ is the shared start), resync requests when
//     a mirror is invalid (gap, rejection) and the full snapshot that answers them;
//   - late join: a fresh peer adopts the first snapshot of a swarm more than a round ahead;
//   - hostile neighbours: stale or malformed deltas, outliers and pulls far beyond the other links' are
//     strikes; a link with strikes_to_cut of them within strike_window rounds is cut for good (Distrusted),
//     and a mix that would leave non-finite parameters is undone;
//   - the deferred link-down: a neighbour that went away after sending this round's delta has already
//     mixed with our public copy, so its copy is kept for our mix of that round (else the pair's exchange
//     would be one-sided and the swarm's average would move) and dropped after it.
//
// Inputs are the calls below, with the driver's clock (Millis, as Membership). Outputs are the actions
// take_actions() returns, in order. No I/O, no clock, no threads: one thread at a time.
#pragma once

#include <boost/container/flat_map.hpp>
#include <boost/container/flat_set.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "gossip/consensus.h"
#include "gossip/id_table.h"
#include "gossip/membership.h"
#include "gossip/messages.h"
#include "gossip/outer_optimizer.h"
#include "gossip/round_schedule.h"

namespace murmur::gossip {

// The most a peer that finished its last round waits for its deltas to go out before it says Bye (a
// Bye and the LinkClose it causes would overtake them on the control connection).
inline constexpr Millis kLeaveDrain = 5000;

struct RoundConfig {
  ConsensusConfig consensus;
  RoundSchedule schedule;  // H, and the warm-up rounds that take no outer step
  double outer_lr = 0.7;   // Nesterov outer step (DiLoCo); 1 and 0 give plain local SGD
  double outer_momentum = 0.9;
  // Where the outer step applies: on the mixed pseudo-gradient θ_start − mix(θ') after the mix (the
  // momentum accumulates the swarm's update: peers agree on sparse graphs), or on the peer's own before
  // it gossips (DiLoCo's order: per-peer momentum amplifies what the mix has not averaged yet; at 8
  // peers of degree 3 it ended worse than training alone, docs/experiments/quality-gap.md).
  bool outer_after_mix = true;
  Millis wait_max = 5000;       // most a round waits for its neighbours' deltas before mixing without them
  uint32_t strikes_to_cut = 3;  // strikes (see RejectKind) within strike_window rounds cut a link; 0 = never
  uint32_t strike_window = 8;
};

// Send `msg` on the link (to, epoch) with sequence number `seq`. A delta goes to every link as one
// shared message: encode (or size) it once.
struct SendTrain {
  PeerId to{};
  uint64_t epoch = 0, seq = 0;
  std::shared_ptr<const TrainMessage> msg;
};
// θ was replaced by a neighbour's state (late join): theta() is the new round start, round() the
// swarm's round. The driver's model takes theta() and restarts the round's local steps.
struct Adopted {
  PeerId from{};
  uint64_t round = 0;
};
// Round `round` mixed: theta() is the next round's start. `late`: links whose round-`round` delta had
// not arrived when the deadline passed (their older copy mixed instead; CHOCO tolerates stale copies).
struct Mixed {
  uint64_t round = 0;
  MixReport report;
  std::vector<PeerId> late;
};
// Why a neighbour's contribution was dropped or cut down; all but `gap` are strikes against the link.
enum class RejectKind : uint8_t {
  malformed,  // undecodable, wrong size, NaN/Inf, impossible degree, a message of another layer
  outlier,    // a delta (or an unasked-for snapshot's change) far larger than the link's usual
  stale,      // a delta of a round the mirror already holds
  far,        // its copy was clipped to under a quarter in the mix: far beyond the other links
  gap,        // a lost message left the mirror invalid (resync asked): no fault of the sender
  nonfinite,  // the mix would have left NaN/Inf in θ (undone; not pinned on one link)
  diverged,   // training diverged right after a mix (rollback): the link that pulled hardest
};
const char* to_string(RejectKind k);

// A message from `from` was dropped or its pull cut down: for logs and metrics.
struct Rejected {
  PeerId from{};
  RejectKind kind = RejectKind::malformed;
  std::string reason;
};
// The link to `peer` was cut for repeated strikes, and links it asks for later are refused: the driver's
// network layer closes it and keeps the peer off its neighbour list.
struct Distrusted {
  PeerId peer{};
  uint64_t epoch = 0;
  std::string reason;
};
using RoundAction = std::variant<SendTrain, Adopted, Mixed, Rejected, Distrusted>;

struct RoundCounters {
  uint64_t rejected = 0;           // Rejected actions
  uint64_t resyncs_requested = 0;  // ResyncRequests sent
  uint64_t resyncs_served = 0;     // full snapshots sent in answer
  uint64_t late_links = 0;         // links mixed without their round's delta (deadline)
  uint64_t distrusted = 0;         // links cut for strikes
  uint64_t mixes_undone = 0;       // mixes that would have left NaN/Inf in θ
  uint64_t rollbacks = 0;          // rollback() calls that went back
};

class RoundDriver {
 public:
  enum class Phase : uint8_t { computing, waiting };

  // n: parameter count; seed: this peer's (the codec's randomness). Throws std::invalid_argument for a
  // bad config (Consensus's checks, a negative wait, a non-finite outer step).
  RoundDriver(size_t n, RoundConfig cfg, uint64_t seed);

  // A new run: every peer starts from the same θ (so first snapshots go by digest); fresh until the
  // first round's local steps are done or a snapshot arrives.
  void start(std::span<const float> theta);
  // A resumed run (a checkpoint): θ, the public copy θ̂ (what neighbours mirrored; θ − θ̂ is still owed
  // to them), the outer momentum (empty: zero) and the round. Not fresh: it keeps its own state.
  void resume(std::span<const float> theta, std::span<const float> public_copy,
              std::span<const float> momentum, uint64_t round);

  // -- inputs ---------------------------------------------------------------------------------------
  // A neighbour link came up (both sides agreed): it starts with our snapshot. A distrusted peer's
  // link is refused (Distrusted again).
  void link_up(const PeerId& peer, uint64_t epoch);
  // It went down; a link of another epoch is left alone.
  void link_down(const PeerId& peer, uint64_t epoch, Millis now);
  // A training message on the link (from, epoch) with its sequence number. Ring segments belong to the
  // baselines and are rejected here.
  void on_message(const PeerId& from, uint64_t epoch, uint64_t seq, const TrainMessage& msg, Millis now);
  // θ' after the round's local steps (from theta()). Throws std::logic_error while waiting,
  // std::domain_error for NaN/Inf in θ' (nothing changed then).
  void local_steps_done(std::span<const float> theta_after, Millis now);
  // The time: a waiting round whose deadline passed mixes.
  void tick(Millis now);
  // Mix a waiting round now with the copies at hand (the driver stops: interrupt, time limit).
  void mix_now();
  // Training diverged (non-finite loss) in the round that the last mix started: θ goes back to what it
  // was before that mix, and the link that pulled hardest takes a strike. Returns false when there is
  // no such state (no mix since the start, an adoption or a rollback): the caller cannot go back.
  bool rollback();

  std::vector<RoundAction> take_actions() { return std::exchange(actions_, {}); }

  // -- state ----------------------------------------------------------------------------------------
  uint64_t round() const { return round_; }  // the round being computed or waited for
  Phase phase() const { return phase_; }
  bool fresh() const { return fresh_; }
  std::optional<Millis> deadline() const {
    return phase_ == Phase::waiting ? std::optional<Millis>(deadline_) : std::nullopt;
  }
  // The round's start while computing; while waiting, θ after the outer step, before the mix.
  std::span<const float> theta() const { return theta_; }
  std::span<const float> momentum() const { return outer_.momentum(); }
  size_t links() const { return links_.size(); }
  Consensus& consensus() { return consensus_; }  // codec choice, public copy, distances, counters
  const Consensus& consensus() const { return consensus_; }
  const RoundCounters& counters() const { return counters_; }
  bool distrusts(const PeerId& peer) const { return distrusted_.count(peer) != 0; }

 private:
  struct Link {
    uint64_t epoch = 0;
    uint64_t send_seq = 0;
    int64_t last_round = -1;  // newest round of theirs our mirror holds
    bool resync_pending = false;
    bool closing = false;           // went down after its delta of this round: mixes once more, then goes
    std::vector<uint64_t> strikes;  // rounds of the strikes within the window
  };
  void send(const PeerId& to, Link& l, std::shared_ptr<const TrainMessage> msg);
  void send_full_snapshot(const PeerId& to, Link& l);
  void request_snapshot(const PeerId& to, Link& l);
  void on_delta(const PeerId& from, Link& l, uint64_t seq, const Delta& d);
  void adopt(const PeerId& from, const Delta& snapshot);
  // Logs the rejection; a strike against the link unless kind is gap or nonfinite.
  void reject(const PeerId& from, RejectKind kind, std::string reason);
  void cut_struck_links();
  bool all_in() const;
  void mix_if_ready(Millis now);
  void mix();

  size_t n_;
  RoundConfig cfg_;
  Consensus consensus_;
  OuterOptimizer outer_;
  std::vector<float> theta_, work_;
  std::vector<float> start_;  // outer_after_mix: the round's start, for the step after the mix
  uint64_t round_ = 0;
  Phase phase_ = Phase::computing;
  bool fresh_ = false;
  Millis deadline_ = 0;
  bool premix_valid_ = false;       // work_ holds θ before the last mix (rollback)
  std::optional<PeerId> heaviest_;  // the last mix's heaviest pull
  // Ordered like Consensus's links; a handful, searched on every message.
  boost::container::flat_map<PeerId, Link, IdLess> links_;
  boost::container::flat_set<PeerId, IdLess> distrusted_;
  std::vector<RoundAction> actions_;
  RoundCounters counters_;
};

}  // namespace murmur::gossip

// Settings of one peer (`murmur node`): identity and network, the model and its
// local training, and the decentralized algorithm. `murmur swarm` and
// `murmur netem run` pass the same keys through a TOML file (--config).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gossip/byzantine.h"
#include "gossip/membership.h"
#include "gossip/round_driver.h"
#include "gossip/run_identity.h"
#include "node/run/options.h"

namespace murmur::peer {

struct PeerArgs {
  // identity and network
  std::string keys;  // directory with peer.key / peer.pub (murmur keygen)
  std::string listen = "tcp://127.0.0.1:0";
  std::string advertise;              // address others dial (default: the bound listen address)
  std::vector<std::string> join;      // KEY@HOST:PORT of any peers of the run
  std::vector<std::string> dial_via;  // ADDR=VIA: dial ADDR through VIA (netem relays)
  // auto: a peer it joins through dials it back to find out (public when it joins nobody: the first
  // seed); public: others can dial --advertise; outbound: nobody can (behind NAT).
  std::string reachability = "auto";
  bool relay = false;                      // relay links between peers nobody can dial (docs/relay.md)
  std::string relay_bandwidth = "20mbit";  // the cap on everything relayed
  std::string allow;                       // allow-list file; empty with --open
  bool open = false;
  int metrics_port = -1;  // Prometheus /metrics on 127.0.0.1:P (0 = any free port, -1 = off)
  // reassembly bounds against hostile peers (docs/protocol.md, "Limits")
  uint64_t max_payload_mib = 0;     // 0: the model's full fp32 snapshot plus overhead
  uint64_t max_reassembly_mib = 0;  // 0: --max-degree such payloads
  double reassembly_timeout_s = 120;

  // run directory and model
  std::string out;   // log.jsonl, summary.json, checkpoints
  std::string data;  // from `murmur data prepare`
  run::ModelOptions model;
  run::DeviceOptions device{.kind = "cpu", .threads = 1};  // peers usually share a machine
  uint32_t peer_index = 0;                                 // the data stream's peer index (each peer its own)

  // local training, as `murmur train` (train.seed: the same on every peer)
  run::BatchOptions batch;
  run::TrainingOptions train;
  double tokens_per_s_limit = 0;  // compute throttle (heterogeneous peers on one machine); 0 = none

  // algorithm
  std::string algo = "gossip";  // gossip | local | allreduce | diloco
  int64_t inner_steps = 50;     // H: local steps per round
  // Sync warm-up (gossip::RoundSchedule): this share of the run's steps in rounds of warmup_inner_steps that
  // average without the outer step. 12.5 % at half of H took the lab's 4-peer gap to allreduce at x16
  // from +2.6 % to +1.2 % for 12.5 % more bytes (docs/experiments/quality-gap.md).
  double sync_warmup = 0.125;
  int64_t sync_warmup_inner_steps = 0;  // at most inner_steps; 0 = inner_steps / 2
  double outer_lr = 0.7, outer_momentum = 0.9;
  bool outer_after_mix = true;  // gossip: the outer step on the mixed update (RoundConfig)
  double gamma = 1.0;           // consensus step size
  std::string codec = "int8:block=64";
  double round_budget_s = 0;  // > 0: pick the codec per round so a round's sends fit this many seconds
  std::string codec_ladder = "fp32;bf16;int8:block=64;int4:block=64;sign:block=256";
  // robustness against hostile neighbours (docs/algorithm.md, "Guarding the average")
  std::string aggregation = "clip";  // mean | clip | trimmed-mean
  double clip_radius = 0;            // clip: fixed radius; 0 = adaptive (clip_factor × median distance)
  double clip_factor = 3.0;          // 2 cost 0.7 % val loss in a clean 4-peer x16 lab run, 3 nothing
  uint32_t trim = 1;                 // trimmed-mean: values dropped at each end
  uint32_t strikes_to_cut = 3;       // strikes within 8 rounds that cut a link (0 = never)
  std::string byzantine;    // experiments: attack the neighbours (gossip/byzantine.h); empty = honest
  double attack_scale = 0;  // the attack's strength; 0 = its default
  int degree = 3, max_degree = 6;
  double link_lifetime_s = 30;  // mean life of a neighbour link before it is re-sampled
  int expect_peers = 0;         // allreduce/diloco: the ring's size (wait for that many members)
  double wait_max_s = 5.0;      // longest wait for neighbours' deltas before mixing without them
  int64_t eval_every = 1;       // validate every N rounds (0 = only at the end)
  int64_t eval_windows = 50;
  int64_t ckpt_every = 10;  // checkpoint every N rounds (0 = only at the end)
  int64_t log_every = 10;   // steps per "steps" event (mean train loss) in log.jsonl (0 = none)
  std::string resume;       // a checkpoint or run directory of this peer
};

// Registers every flag of PeerArgs on `cmd` (with --help text and validation).
void add_peer_options(CLI::App& cmd, PeerArgs& a);
// The long names of every `murmur node` flag (for checking run files' keys).
std::set<std::string> peer_flag_names();
// Cross-field checks after parsing; throws std::invalid_argument naming the flag.
void validate_peer_args(const PeerArgs& a);
// The gossip round's settings (consensus, guard, outer step, wait) from the flags: one place for the
// peer, the simulator and the lab. Throws std::invalid_argument naming a bad value.
gossip::RoundConfig round_config(const PeerArgs& a);
// --reachability as membership takes it: auto checks by dial-back when the peer joins someone.
gossip::MembershipConfig::Reach reach_of(const PeerArgs& a);

// The settings every peer of the run must share (gossip/run_identity.h), from the flags.
gossip::RunIdentity run_identity(const PeerArgs& a);
// The attack of a Byzantine peer (--byzantine), if any.
std::optional<gossip::AttackConfig> attack_config(const PeerArgs& a);

// The most bytes a legitimate payload takes: the model's full fp32 snapshot (every
// element of the parameter buffer) in a training message.
size_t snapshot_payload_bytes(const ModelConfig& cfg);
struct ReassemblyLimits {
  size_t max_payload_bytes = 0, max_reassembly_bytes = 0;
  std::chrono::milliseconds timeout{0};
};
// The transport's reassembly bounds: the flags, or sized from the model where they are 0.
ReassemblyLimits reassembly_limits(const PeerArgs& a);

}  // namespace murmur::peer

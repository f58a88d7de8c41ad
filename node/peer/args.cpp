#include "node/peer/args.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "compress/wire.h"
#include "gossip/wire.h"
#include "model/config.h"
#include "model/layout.h"
#include "netem/units.h"

namespace murmur::peer {

namespace {

constexpr size_t kMiB = size_t{1} << 20;

// A CLI11 check that accepts what `parse` accepts, with its error message.
template <typename Parse>
CLI::Validator parsed_by(Parse parse) {
  return CLI::Validator(
      [parse](std::string& text) {
        try {
          parse(text);
          return std::string();
        } catch (const std::invalid_argument& e) {
          return std::string(e.what());
        }
      },
      "");
}

}  // namespace

void add_peer_options(CLI::App& cmd, PeerArgs& a) {
  const std::string net = "Identity and network", model = "Run and model", train = "Local training",
                    algo = "Algorithm";
  cmd.add_option("--keys", a.keys, "Directory holding peer.key and peer.pub (from `murmur keygen`)")
      ->group(net);
  cmd.add_option("--listen", a.listen, "Address to accept peers on (port 0 = any free port)")
      ->capture_default_str()
      ->group(net);
  cmd.add_option("--advertise", a.advertise, "Address other peers dial (default: the bound address)")
      ->group(net);
  cmd.add_option("--join", a.join, "KEY@HOST:PORT of a peer already in the run (repeatable)")->group(net);
  cmd.add_option("--reachability", a.reachability,
                 "Can other peers dial --advertise? auto: a peer this one joins through dials it back to\n"
                 "find out (a peer that joins nobody is public); public: yes; outbound: no (behind NAT or\n"
                 "a firewall). A peer nobody can dial still trains: it opens its links itself")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "public", "outbound"}))
      ->group(net);
  cmd.add_flag("--relay", a.relay,
               "Relay links between peers nobody can dial (ciphertext only: they stay end to end\n"
               "encrypted); needs this peer to be dialable")
      ->group(net);
  cmd.add_option("--relay-bandwidth", a.relay_bandwidth,
                 "Cap on all bytes this peer relays, both directions (e.g. 20mbit, 1gbit)")
      ->capture_default_str()
      ->group(net);
  cmd.add_option("--dial-via", a.dial_via, "ADDR=VIA: reach ADDR through VIA, e.g. a netem relay")
      ->group(net);
  cmd.add_option("--allow", a.allow, "Allow-list: one public key per line; only these peers are admitted")
      ->group(net);
  cmd.add_flag("--open", a.open, "Admit any peer (no allow-list). Anyone who can reach the port can join")
      ->group(net);
  cmd.add_option("--metrics-port", a.metrics_port,
                 "Serve Prometheus /metrics on 127.0.0.1:PORT (0 = any free port, -1 = off)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 65535))
      ->group(net);
  const auto add_mib = [&](const std::string& flag, uint64_t& value, const std::string& help) {
    cmd.add_option(flag, value, help)
        ->capture_default_str()
        ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 20))
        ->group(net);
  };
  add_mib("--max-payload-mib", a.max_payload_mib,
          "Largest payload accepted or sent, in MiB; also what one peer can hold in reassembly "
          "(0 = the model's full fp32 snapshot plus overhead)");
  add_mib("--max-reassembly-mib", a.max_reassembly_mib,
          "Memory for all peers' partially received payloads together, in MiB "
          "(0 = --max-degree largest payloads)");
  cmd.add_option("--reassembly-timeout-s", a.reassembly_timeout_s,
                 "Drop a partially received payload after this many seconds without a new chunk")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0))
      ->group(net);

  cmd.add_option("--out", a.out, "Run directory: log.jsonl, summary.json, checkpoints")->group(model);
  cmd.add_option("--data", a.data, "Data directory from `murmur data prepare`")->group(model);
  run::add_model_options(cmd, a.model, model);
  run::add_device_options(cmd, a.device, model);
  cmd.add_option("--peer-index", a.peer_index, "Index of this peer's data stream (distinct per peer)")
      ->capture_default_str()
      ->group(model);
  cmd.add_option("--resume", a.resume, "Continue from this peer's checkpoint (or run directory)")
      ->group(model);

  run::add_batch_options(cmd, a.batch, train);
  run::add_training_options(cmd, a.train, train);
  cmd.add_option("--tokens-per-s-limit", a.tokens_per_s_limit,
                 "Throttle this peer's compute to emulate a slower machine (0 = off)")
      ->check(CLI::NonNegativeNumber)
      ->group(train);

  cmd.add_option("--algo", a.algo,
                 "gossip (decentralized, compressed CHOCO consensus), local (no communication), "
                 "allreduce (synchronous data parallel, every step) or diloco (all-reduce of "
                 "pseudo-gradients every H steps)")
      ->capture_default_str()
      ->check(CLI::IsMember({"gossip", "local", "allreduce", "diloco"}))
      ->group(algo);
  cmd.add_option("--inner-steps,-H", a.inner_steps, "Local steps per round")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->group(algo);
  cmd.add_option("--sync-warmup", a.sync_warmup,
                 "Share of --steps at the start trained in short rounds (--sync-warmup-inner-steps) that "
                 "average the peers' models without the outer step (0 = none)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->group(algo);
  cmd.add_option("--sync-warmup-inner-steps", a.sync_warmup_inner_steps,
                 "Local steps per round during the sync warm-up, at most --inner-steps (0 = half of "
                 "--inner-steps: 12.5 % more rounds with the default --sync-warmup)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))
      ->group(algo);
  cmd.add_option("--outer-lr", a.outer_lr, "Outer (Nesterov) learning rate eta; 1 with momentum 0 = plain")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0))
      ->group(algo);
  cmd.add_option("--outer-momentum", a.outer_momentum, "Outer Nesterov momentum mu")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.9999))
      ->group(algo);
  cmd.add_flag("--outer-after-mix,!--outer-before-mix", a.outer_after_mix,
               "gossip: take the outer step on the mixed update (round start - mixed model) after "
               "mixing (default), or with --outer-before-mix on this peer's own pseudo-gradient before "
               "sending (DiLoCo's order)")
      ->group(algo);
  cmd.add_option("--gamma", a.gamma, "Consensus step size (gossip)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->group(algo);
  cmd.add_option("--codec", a.codec, "Codec of the gossip deltas, e.g. int8:block=64, int4, sign, topk")
      ->capture_default_str()
      ->group(algo);
  cmd.add_option("--round-budget-s", a.round_budget_s,
                 "Choose the codec per round so its traffic fits this many seconds of the measured "
                 "uplink (0 = always --codec)")
      ->check(CLI::NonNegativeNumber)
      ->group(algo);
  cmd.add_option("--codec-ladder", a.codec_ladder,
                 "With --round-budget-s: candidate codecs, fine to coarse, separated by ';'")
      ->capture_default_str()
      ->group(algo);
  const std::string robust = "Robustness against hostile neighbours";
  cmd.add_option("--aggregation", a.aggregation,
                 "How a peer mixes its neighbours' copies: clip (each pull theta_j - theta_i clipped to a "
                 "radius), trimmed-mean (per value, without the --trim lowest and highest) or mean (no "
                 "defence)")
      ->capture_default_str()
      ->check(parsed_by(gossip::parse_aggregation))
      ->group(robust);
  cmd.add_option("--clip-radius", a.clip_radius,
                 "clip: a fixed L2 radius for every pull (0 = adaptive: --clip-factor x the median "
                 "distance to the neighbours, recent rounds included)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(robust);
  cmd.add_option("--clip-factor", a.clip_factor, "clip, adaptive: the radius in median distances")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 100.0))
      ->group(robust);
  cmd.add_option("--trim", a.trim, "trimmed-mean: values dropped at each end of every coordinate")
      ->capture_default_str()
      ->check(CLI::Range(1, 16))
      ->group(robust);
  cmd.add_option("--strikes-to-cut", a.strikes_to_cut,
                 "Cut a neighbour for good after this many strikes (malformed, stale, outlier or far "
                 "contributions) within 8 rounds (0 = never)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000))
      ->group(robust);
  cmd.add_option("--byzantine", a.byzantine,
                 "Experiments only: make this peer attack its neighbours (sign-flip, random, stale, nan, "
                 "snapshot, alie, ipm; see docs/robustness.md)")
      ->check(parsed_by(gossip::parse_attack))
      ->group(robust);
  cmd.add_option("--attack-scale", a.attack_scale,
                 "With --byzantine: the attack's strength (0 = its default)")
      ->check(CLI::NonNegativeNumber)
      ->group(robust);
  cmd.add_option("--degree", a.degree, "Target number of neighbour links")
      ->capture_default_str()
      ->check(CLI::Range(1, 64))
      ->group(algo);
  cmd.add_option("--max-degree", a.max_degree, "Most neighbour links accepted")
      ->capture_default_str()
      ->check(CLI::Range(1, 64))
      ->group(algo);
  cmd.add_option("--link-lifetime-s", a.link_lifetime_s,
                 "Mean life of a neighbour link before it is re-sampled (gossip sends a full snapshot to "
                 "each new neighbour, so keep it to several rounds when rounds are long)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 86400.0))
      ->group(algo);
  cmd.add_option("--expect-peers", a.expect_peers,
                 "allreduce/diloco: the ring's size; training waits until that many peers are up")
      ->check(CLI::Range(0, 4096))
      ->group(algo);
  cmd.add_option("--wait-max-s", a.wait_max_s,
                 "Longest wait for neighbours' deltas of a round before mixing without them")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0))
      ->group(algo);
  cmd.add_option("--eval-every", a.eval_every, "Validate every N rounds (0 = at the end only)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(algo);
  cmd.add_option("--eval-windows", a.eval_windows, "Validation windows of context+1 tokens")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(algo);
  cmd.add_option("--ckpt-every", a.ckpt_every, "Checkpoint every N rounds (0 = at the end only)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(algo);
  cmd.add_option("--log-every", a.log_every,
                 "Log the mean train loss of every N steps to log.jsonl (event \"steps\"; 0 = off)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(model);
}

std::set<std::string> peer_flag_names() {
  CLI::App app;
  PeerArgs unused;
  add_peer_options(app, unused);
  std::set<std::string> names;
  for (const CLI::Option* o : app.get_options())
    for (const std::string& n : o->get_lnames()) names.insert(n);
  return names;
}

void validate_peer_args(const PeerArgs& a) {
  if (a.keys.empty()) throw std::invalid_argument("--keys is required (make one with `murmur keygen`)");
  if (a.allow.empty() && !a.open)
    throw std::invalid_argument("give --allow FILE (the run's public keys) or --open to admit anyone");
  if (!a.allow.empty() && a.open) throw std::invalid_argument("--allow and --open exclude each other");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (a.data.empty())
    throw std::invalid_argument("--data is required (a directory made by `murmur data prepare`)");
  a.model.config();  // throws naming the known presets, or a bad shape
  if (a.degree > a.max_degree) throw std::invalid_argument("--degree must not exceed --max-degree");
  if (a.relay && a.reachability == "outbound")
    throw std::invalid_argument("--relay needs a peer others can dial, not --reachability outbound");
  try {
    if (!(netem::parse_bandwidth(a.relay_bandwidth) > 0)) throw std::invalid_argument("not positive");
  } catch (const std::exception& e) {
    throw std::invalid_argument("--relay-bandwidth '" + a.relay_bandwidth + "': " + e.what() +
                                " (e.g. 20mbit, 500kbit, 1gbit)");
  }
  if (a.reachability != "auto" && a.reachability != "public" && a.reachability != "outbound")
    throw std::invalid_argument("--reachability must be auto, public or outbound, not '" + a.reachability +
                                "'");
  if ((a.algo == "allreduce" || a.algo == "diloco") && a.expect_peers < 1)
    throw std::invalid_argument("--algo " + a.algo + " needs --expect-peers N (the ring's size)");
  if (a.train.steps < a.inner_steps) throw std::invalid_argument("--steps must be at least --inner-steps");
  const size_t snapshot = snapshot_payload_bytes(a.model.config());
  if (a.max_payload_mib != 0 && a.max_payload_mib * kMiB < snapshot)
    throw std::invalid_argument("--max-payload-mib " + std::to_string(a.max_payload_mib) +
                                " is below the model's full snapshot (" + std::to_string(snapshot) +
                                " bytes): neighbours' snapshots would be refused");
  if (a.max_reassembly_mib != 0 && a.max_reassembly_mib * kMiB < reassembly_limits(a).max_payload_bytes)
    throw std::invalid_argument("--max-reassembly-mib " + std::to_string(a.max_reassembly_mib) +
                                " cannot hold one payload of --max-payload-mib");
}

size_t snapshot_payload_bytes(const ModelConfig& cfg) {
  return sizeof(float) * gpt2_layout(cfg).total() + compress::kHeaderBytes + gossip::wire::kMaxFrameOverhead;
}

ReassemblyLimits reassembly_limits(const PeerArgs& a) {
  ReassemblyLimits l;
  l.max_payload_bytes =
      a.max_payload_mib ? a.max_payload_mib * kMiB : snapshot_payload_bytes(a.model.config());
  // Every neighbour link may send a full snapshot at once (a joiner's first links).
  l.max_reassembly_bytes =
      a.max_reassembly_mib ? a.max_reassembly_mib * kMiB : size_t(a.max_degree) * l.max_payload_bytes;
  l.timeout = std::chrono::milliseconds(std::llround(a.reassembly_timeout_s * 1e3));
  return l;
}

gossip::RoundConfig round_config(const PeerArgs& a) {
  gossip::RoundConfig c;
  c.consensus.gamma = a.gamma;
  c.consensus.codec = a.codec;
  c.consensus.aggregation = gossip::parse_aggregation(a.aggregation);
  c.consensus.clip_radius = a.clip_radius;
  c.consensus.clip_factor = a.clip_factor;
  c.consensus.trim = a.trim;
  const int64_t warm_h = a.sync_warmup_inner_steps > 0 ? std::min(a.sync_warmup_inner_steps, a.inner_steps)
                                                       : std::max<int64_t>(1, a.inner_steps / 2);
  c.schedule = {a.inner_steps, std::llround(a.sync_warmup * double(a.train.steps)), warm_h};
  c.outer_lr = a.outer_lr;
  c.outer_momentum = a.outer_momentum;
  c.outer_after_mix = a.outer_after_mix;
  c.wait_max = static_cast<gossip::Millis>(std::llround(a.wait_max_s * 1e3));
  c.strikes_to_cut = a.strikes_to_cut;
  return c;
}

gossip::MembershipConfig::Reach reach_of(const PeerArgs& a) {
  using Reach = gossip::MembershipConfig::Reach;
  if (a.reachability == "outbound") return Reach::outbound;
  if (a.reachability == "public" || a.join.empty()) return Reach::assumed;
  return Reach::check;
}

gossip::RunIdentity run_identity(const PeerArgs& a) {
  const ModelConfig m = a.model.config();
  const gossip::RoundSchedule s = round_config(a).schedule;
  gossip::RunIdentity r;
  r.n_layer = uint32_t(m.n_layer);
  r.n_head = uint32_t(m.n_head);
  r.n_embd = uint32_t(m.n_embd);
  r.n_ctx = uint32_t(m.n_ctx);
  r.vocab_size = uint32_t(m.vocab_size);
  r.seed = a.train.seed;
  r.algo = a.algo;
  r.inner_steps = uint64_t(s.inner_steps);
  r.warmup_steps = uint64_t(s.warmup_steps);
  r.warmup_inner_steps = s.warmup_steps > 0 ? uint64_t(s.warmup_inner_steps) : 0;
  r.outer_lr = a.outer_lr;
  r.outer_momentum = a.outer_momentum;
  r.outer_after_mix = a.outer_after_mix;
  return r;
}

std::optional<gossip::AttackConfig> attack_config(const PeerArgs& a) {
  if (a.byzantine.empty()) return std::nullopt;
  return gossip::AttackConfig{gossip::parse_attack(a.byzantine), a.attack_scale};
}

}  // namespace murmur::peer

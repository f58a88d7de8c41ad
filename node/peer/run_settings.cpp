#include "node/peer/run_settings.h"

#include <cmath>

#include "gossip/peer_id.h"

namespace murmur::peer {

const std::vector<std::string> kRunFlags = {
    "--preset",   "--n-layer",        "--n-head",          "--n-embd",      "--n-ctx",
    "--seed",     "--algo",           "--inner-steps",     "--sync-warmup", "--sync-warmup-inner-steps",
    "--outer-lr", "--outer-momentum", "--outer-before-mix"};

std::optional<gossip::RunIdentity> ask_run_identity(net::TransportConfig config,
                                                    const std::string& join_address,
                                                    std::chrono::milliseconds timeout) {
  config.listen = "tcp://127.0.0.1:0";  // answers come back over our own connection
  config.linger_ms = 0;
  net::Transport t(config);
  const gossip::PeerInfo target = net::parse_join_address(join_address);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto next_query = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::chrono::steady_clock::now() >= next_query) {
      t.send(target, gossip::RunQuery{});
      next_query += std::chrono::seconds(1);
    }
    for (net::Incoming& in : t.poll(std::chrono::milliseconds(50))) {
      if (in.from != target.id) continue;
      if (const auto* r = std::get_if<gossip::RunInfo>(&in.msg)) return r->run;
    }
  }
  return std::nullopt;
}

std::string adopt_run_settings(PeerArgs& a, const gossip::RunIdentity& run,
                               const std::set<std::string>& given) {
  const gossip::RunIdentity before = run_identity(a);
  const auto unset = [&](std::initializer_list<const char*> flags) {
    for (const char* f : flags)
      if (given.count(f)) return false;
    return true;
  };
  if (unset({"--preset", "--n-layer", "--n-head", "--n-embd", "--n-ctx"})) {
    a.model.n_layer = int(run.n_layer);
    a.model.n_head = int(run.n_head);
    a.model.n_embd = int(run.n_embd);
    a.model.n_ctx = int(run.n_ctx);
  }
  if (unset({"--seed"})) a.train.seed = run.seed;
  if (unset({"--algo"})) a.algo = run.algo;
  if (unset({"--inner-steps"})) a.inner_steps = int64_t(run.inner_steps);
  // The warm-up is a share of --steps; the run's length in steps, on this peer's --steps.
  if (unset({"--sync-warmup"}) && a.train.steps > 0)
    a.sync_warmup = double(run.warmup_steps) / double(a.train.steps);
  if (unset({"--sync-warmup-inner-steps"}) && run.warmup_steps > 0)
    a.sync_warmup_inner_steps = int64_t(run.warmup_inner_steps);
  if (unset({"--outer-lr"})) a.outer_lr = run.outer_lr;
  if (unset({"--outer-momentum"})) a.outer_momentum = run.outer_momentum;
  if (unset({"--outer-before-mix"})) a.outer_after_mix = run.outer_after_mix;
  return gossip::run_differences(run_identity(a), before);
}

}  // namespace murmur::peer

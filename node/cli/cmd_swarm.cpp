// murmur swarm: N local peers on loopback for a quick try or an experiment.
// Generates a key pair per peer and the run's allow-list, starts peer 0, lets
// the others join through it, shows their progress, and on exit (also Ctrl-C)
// stops every peer and writes DIR/summary.json from the peers' own summaries.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "node/cli/commands.h"
#include "node/launch/launcher.h"
#include "node/launch/process.h"
#include "node/launch/swarm_report.h"
#include "node/run/interrupt.h"

namespace murmur::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct SwarmArgs {
  int peers = 4;
  std::string config, out, algo;
  std::vector<std::string> extra;  // flags passed to every peer
  double timeout_s = 0;
};

void run_swarm(const SwarmArgs& a) {
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  if (a.config.empty()) throw std::invalid_argument("--config RUN.toml is required");
  if (!fs::exists(a.config)) throw std::invalid_argument("--config: no file " + a.config);
  fs::create_directories(a.out);
  const fs::path exe = launch::self_executable(), out = fs::absolute(a.out);
  std::vector<std::string> names;
  for (int i = 0; i < a.peers; ++i) names.push_back(std::to_string(i));
  const std::vector<launch::LaunchedPeer> peers = launch::provision_peers(out, names);
  const bool ring = a.algo == "allreduce" || a.algo == "diloco";

  run::install_interrupt_handler();
  std::vector<launch::Process> procs;
  std::vector<fs::path> dirs;
  std::string seed_addr;
  for (int i = 0; i < a.peers; ++i) {
    const launch::LaunchedPeer& p = peers[static_cast<size_t>(i)];
    const int port = launch::free_tcp_port();
    const launch::NodeCommand cmd{
        .exe = exe,
        .config = fs::absolute(a.config),
        .allow = out / "allow.txt",
        .peer = &p,
        .listen = "tcp://127.0.0.1:" + std::to_string(port),
        .peer_index = static_cast<uint32_t>(i),
        .algo = a.algo,
        .expect_peers = ring ? a.peers : 0,
        .join = i > 0 ? std::vector<std::string>{seed_addr} : std::vector<std::string>{},
        .flags = {},
        .extra = a.extra};
    procs.push_back(launch::Process::spawn(launch::node_argv(cmd), p.dir / "node.log"));
    dirs.push_back(p.dir);
    if (i == 0) seed_addr = launch::join_address(p, "127.0.0.1", port);
  }
  std::printf("swarm: %d peers started (logs in %s/peer-*/node.log)\n", a.peers, out.c_str());

  const auto start = std::chrono::steady_clock::now();
  const char* ending = "finished";
  for (;;) {
    bool any = false;
    for (auto& p : procs) any |= p.running();
    if (!any) break;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (run::interrupted()) {
      ending = "interrupted";
      break;
    }
    if (a.timeout_s > 0 && elapsed > a.timeout_s) {
      ending = "timed out";
      break;
    }
    std::printf("%s\n", launch::progress_line(dirs, elapsed).c_str());
    std::fflush(stdout);
    for (int k = 0; k < 20 && !run::interrupted(); ++k)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // Stop in parallel: each peer saves a final checkpoint on SIGTERM.
  for (auto& p : procs) p.signal(SIGTERM);
  int failed = 0;
  for (size_t i = 0; i < procs.size(); ++i) {
    const int code = procs[i].finish(std::chrono::seconds(30));
    if (code != 0) {
      ++failed;
      std::fprintf(stderr, "swarm: peer %zu exited with %d (see %s)\n", i, code,
                   (dirs[i] / "node.log").c_str());
    }
  }
  const json summary = launch::write_summary(dirs, out / "summary.json", a.algo);
  std::printf("swarm %s: %s\n%s", ending, (out / "summary.json").c_str(),
              launch::summary_table(summary).c_str());
  if (failed) throw std::runtime_error(std::to_string(failed) + " peer(s) failed");
}

}  // namespace

void add_swarm_command(CLI::App& app) {
  auto a = std::make_shared<SwarmArgs>();
  CLI::App* sub = app.add_subcommand("swarm", "Start N peers on this machine (loopback) and report");
  sub->footer(
      "Each peer runs `murmur node --config RUN.toml` with its own keys, data stream and run\n"
      "directory DIR/peer-I; peer 0 is the first contact of the others. Flags after `--` go to\n"
      "every peer. Ctrl-C stops all peers (each saves a checkpoint) and writes the summary.");
  sub->add_option("--peers", a->peers, "Number of peers")->capture_default_str()->check(CLI::Range(1, 256));
  sub->add_option("--config", a->config, "Run configuration (TOML; keys are `murmur node` flags)");
  sub->add_option("--out", a->out, "Directory for the peers' runs and summary.json");
  sub->add_option("--algo", a->algo, "Override the config's algorithm")
      ->check(CLI::IsMember({"gossip", "local", "allreduce", "diloco"}));
  sub->add_option("--timeout", a->timeout_s, "Stop the peers after this many seconds (0 = none)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("extra", a->extra, "Flags for every peer (after --)");
  sub->callback([a] { run_swarm(*a); });
}

}  // namespace murmur::cli

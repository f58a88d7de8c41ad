// murmur netem run SCENARIO.toml --out DIR: peers as processes, every dial between two of them shaped by the
// link emulator (netem/emulator.h: a relay link per route on loopback, or tc netem between network
// namespaces with --backend tc), the scenario's timeline executed on time, a live
// progress view, and on any ending (done, duration, Ctrl-C, error) every process stopped and the report
// written (netem/report.h).
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <tuple>

#include "model/atomic_file.h"
#include "netem/emulator.h"
#include "netem/report.h"
#include "netem/runner.h"
#include "netem/tc_emulator.h"
#include "node/cli/commands.h"
#include "node/cli/config_args.h"
#include "node/launch/launcher.h"
#include "node/launch/process.h"
#include "node/launch/swarm_report.h"
#include "node/peer/args.h"
#include "node/run/interrupt.h"
#include "node/run/jsonl_log.h"

namespace murmur::cli {

namespace fs = std::filesystem;
using netem::EventKind;
using netem::ScenarioEvent;
using nlohmann::json;

namespace {

struct RunArgs {
  std::string scenario, out, algo, duration, backend = "relay";
  double base_tokens_per_s = -1;  // < 0: the scenario's
  double progress_s = 5, sample_s = 1, grace_s = 30;
  std::vector<std::string> extra;  // flags for every peer (after --)
};

// The long flag names of `murmur node`: the keys a scenario's [training] may use.
// Parses run.toml as `murmur node` will, so a bad value stops the run before any peer starts.
void check_node_values(const fs::path& run_toml, const std::string& source) {
  std::string prog = "murmur", flag = "--config", file = run_toml.string();
  char* argv[] = {prog.data(), flag.data(), file.data()};
  std::vector<std::string> args = expand_config_args(3, argv);
  args.erase(args.begin());
  std::reverse(args.begin(), args.end());
  CLI::App app;
  peer::PeerArgs values;
  peer::add_peer_options(app, values);
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    throw std::invalid_argument(source + ": [training]: " + e.what());
  }
  if (!values.data.empty() && !fs::is_directory(values.data))
    throw std::invalid_argument(source + ": [training] data: no directory " + values.data +
                                " (make one with `murmur data prepare`)");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const char* event_name(EventKind k) {
  switch (k) {
    case EventKind::kill:
      return "kill";
    case EventKind::restart:
      return "restart";
    case EventKind::join:
      return "join";
    case EventKind::partition:
      return "partition";
    case EventKind::heal:
      return "heal";
    case EventKind::set_link:
      return "set_link";
    case EventKind::set_site:
      return "set_site";
  }
  return "?";
}

struct PeerSlot : launch::LaunchedPeer {
  uint16_t port = 0;
  launch::Process proc;
  bool started = false, killed = false, exit_logged = false;
};

class ScenarioRun {
 public:
  ScenarioRun(const RunArgs& a, netem::Scenario s)
      : a_(a), s_(std::move(s)), out_(fs::absolute(a.out)), routes_(netem::layout_routes(s_)) {}

  void run();

 private:
  void prepare();
  void start_peer(size_t i, bool initial);
  void apply(const ScenarioEvent& e);
  void note(json e);
  void notice_exits();
  void sample_links();
  bool start_pending(size_t next_event) const;
  int stop_all();
  void report(const std::string& ending, int failed);
  std::vector<fs::path> dirs() const;
  std::vector<std::string> names() const;

  const RunArgs& a_;
  netem::Scenario s_;
  fs::path out_;
  std::vector<netem::Route> routes_;
  netem::RunConfig config_;
  std::vector<PeerSlot> peers_;
  std::unique_ptr<netem::LinkEmulator> net_;
  std::vector<netem::LinkShape> shapes_;  // each link's profile now (set_link changes fields of it)
  std::vector<netem::LinkSample> samples_;
  std::unique_ptr<run::JsonlLog> events_;
  fs::path exe_ = launch::self_executable();
  std::chrono::steady_clock::time_point t0_;
  double t0_unix_ = 0;
};

void ScenarioRun::prepare() {
  const std::string source = fs::path(a_.scenario).filename().string();
  if (s_.peers.size() > netem::kMaxRunPeers)
    throw std::invalid_argument(
        source + ": " + std::to_string(s_.peers.size()) + " peers; `murmur netem run` starts at most " +
        std::to_string(netem::kMaxRunPeers) + " processes (try `murmur netem simulate`)");
  if (a_.backend == "tc") netem::check_tc_scenario(s_);
  config_ = netem::training_run_config(s_, peer::peer_flag_names(), source);
  if (!a_.algo.empty()) config_.algo = a_.algo;
  if (a_.base_tokens_per_s >= 0) config_.base_tokens_per_s = a_.base_tokens_per_s;
  fs::create_directories(out_);
  write_text_atomic(out_ / "run.toml", config_.toml);
  check_node_values(out_ / "run.toml", source);
  fs::copy_file(a_.scenario, out_ / "scenario.toml", fs::copy_options::overwrite_existing);

  std::vector<std::string> names;
  for (const netem::ScenarioPeer& sp : s_.peers) names.push_back(sp.name);
  for (launch::LaunchedPeer& id : launch::provision_peers(out_, names)) {
    PeerSlot p;
    static_cast<launch::LaunchedPeer&>(p) = std::move(id);
    peers_.push_back(std::move(p));
  }

  // Every peer's listen port is fixed for the whole run: the relay links target it across restarts.
  std::set<int> taken;
  std::vector<uint16_t> listen_ports;
  for (PeerSlot& p : peers_) {
    int port = launch::free_tcp_port();
    while (!taken.insert(port).second) port = launch::free_tcp_port();
    p.port = static_cast<uint16_t>(port);
    listen_ports.push_back(p.port);
  }
  for (const netem::Route& r : routes_) shapes_.push_back(r.shape);
  try {
    net_ = a_.backend == "tc" ? netem::make_tc_emulator(routes_, peers_.size())
                              : netem::make_relay_emulator(routes_, listen_ports, s_.sites);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
  events_ = std::make_unique<run::JsonlLog>(out_ / "events.jsonl");
}

void ScenarioRun::note(json e) {
  const double t = seconds_since(t0_);
  e["t_s"] = t;
  std::string line;
  for (const auto& [k, v] : e.items()) {
    if (k != "event" && k != "t_s") line += " " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  std::printf("[%6.0fs] %s%s\n", t, e.value("event", "").c_str(), line.c_str());
  std::fflush(stdout);
  events_->write(e);
}

void ScenarioRun::start_peer(size_t i, bool initial) {
  PeerSlot& p = peers_[i];
  launch::NodeCommand cmd{.exe = exe_,
                          .config = out_ / "run.toml",
                          .allow = out_ / "allow.txt",
                          .peer = &p,
                          .listen = "tcp://" + net_->host(i) + ":" + std::to_string(p.port),
                          .peer_index = static_cast<uint32_t>(i),
                          .algo = a_.algo,
                          .expect_peers = 0,
                          .join = {},
                          .flags = net_->peer_flags(i),
                          .extra = a_.extra};
  if ((config_.algo == "allreduce" || config_.algo == "diloco") && !config_.has_expect_peers)
    cmd.expect_peers = static_cast<int>(
        std::count_if(s_.peers.begin(), s_.peers.end(), [](const auto& sp) { return sp.starts; }));
  // At t = 0 everyone joins through the first starting peer; later starts through every running peer.
  const auto first = std::find_if(s_.peers.begin(), s_.peers.end(), [](const auto& sp) { return sp.starts; });
  for (size_t j = 0; j < peers_.size(); ++j) {
    const bool seed = j == static_cast<size_t>(first - s_.peers.begin());
    if (j != i && (initial ? seed : peers_[j].proc.running()))
      cmd.join.push_back(launch::join_address(peers_[j], net_->host(j), peers_[j].port));
  }
  if (const netem::ScenarioPeer& sp = s_.peers[i]; !sp.attack.empty())
    cmd.flags.insert(cmd.flags.end(),
                     {"--byzantine", sp.attack, "--attack-scale", std::to_string(sp.attack_scale)});
  const double tps = netem::tokens_per_s_limit(s_, i, config_.base_tokens_per_s);
  if (tps > 0) cmd.flags.insert(cmd.flags.end(), {"--tokens-per-s-limit", std::to_string(tps)});
  const bool resume = fs::exists(p.dir / "latest");
  if (resume) cmd.flags.insert(cmd.flags.end(), {"--resume", p.dir});
  std::vector<std::string> argv = net_->command_prefix(i);
  for (std::string& x : launch::node_argv(cmd)) argv.push_back(std::move(x));
  fs::create_directories(p.dir);
  p.proc = launch::Process::spawn(argv, p.dir / "node.log");
  p.started = true;
  p.killed = p.exit_logged = false;
  note({{"event", "start"},
        {"peer", p.name},
        {"pid", p.proc.pid()},
        {"resume", resume},
        {"tokens_per_s_limit", tps}});
}

void ScenarioRun::apply(const ScenarioEvent& e) {
  json j = {{"event", event_name(e.kind)}, {"at_s", std::chrono::duration<double>(e.at).count()}};
  if (e.peer) {
    PeerSlot& p = peers_[*e.peer];
    j["peer"] = p.name;
    const bool running = p.proc.running();
    if (e.kind == EventKind::kill && running) {
      p.killed = true;
      p.proc.signal(SIGKILL);
      p.proc.wait_for(std::chrono::seconds(2));
      p.exit_logged = true;
    } else if ((e.kind == EventKind::restart && !running) || (e.kind == EventKind::join && !p.started)) {
      note(j);
      start_peer(*e.peer, false);
      return;
    } else {
      j["skipped"] = running ? "already running" : "not running";
    }
    note(j);
    return;
  }
  std::vector<std::string> names;
  for (size_t site : e.sites) names.push_back(s_.sites[site].name);
  j["sites"] = names;
  if (e.kind == EventKind::set_site) {
    netem::ScenarioSite& site = s_.sites[e.sites.at(0)];
    for (auto [change, now, dir] : {std::tuple{&e.uplink, &site.uplink, netem::Direction::up},
                                    std::tuple{&e.downlink, &site.downlink, netem::Direction::down}}) {
      if (!*change) continue;
      **now = (*change)->applied_to(**now);
      net_->set_site(e.sites[0], dir, **now);
    }
    note(j);
    return;
  }
  int changed = 0;
  for (size_t k = 0; k < routes_.size(); ++k) {
    if (!netem::route_matches(routes_[k], e.sites)) continue;
    ++changed;
    if (e.kind == EventKind::partition) net_->partition(k, e.mode);
    if (e.kind == EventKind::heal) net_->heal(k);
    if (e.kind != EventKind::set_link) continue;
    for (const auto dir : {netem::Direction::up, netem::Direction::down}) {
      netem::LinkProfile& now = dir == netem::Direction::up ? shapes_[k].up : shapes_[k].down;
      if (const auto p = netem::set_link_profile(e, routes_[k], dir, now)) {
        now = *p;
        net_->set_profile(k, dir, now);
      }
    }
  }
  j["links"] = changed;
  note(j);
}

void ScenarioRun::notice_exits() {
  for (PeerSlot& p : peers_) {
    if (!p.started || p.exit_logged) continue;
    if (const auto code = p.proc.exit_code()) {
      p.exit_logged = true;
      note({{"event", "exited"}, {"peer", p.name}, {"code", *code}});
    }
  }
}

void ScenarioRun::sample_links() {
  netem::LinkSample k;
  k.time_s = seconds_since(t0_);
  for (size_t r = 0; r < routes_.size(); ++r) k.links.push_back(net_->stats(r));
  samples_.push_back(std::move(k));
}

// A join or restart still ahead keeps the run going while no peer runs.
bool ScenarioRun::start_pending(size_t next_event) const {
  return std::any_of(
      s_.events.begin() + static_cast<std::ptrdiff_t>(next_event), s_.events.end(),
      [](const ScenarioEvent& e) { return e.kind == EventKind::join || e.kind == EventKind::restart; });
}

int ScenarioRun::stop_all() {
  // In parallel: each peer saves a checkpoint on SIGTERM.
  for (PeerSlot& p : peers_) {
    if (p.proc.running()) p.proc.signal(SIGTERM);
  }
  int failed = 0;
  for (PeerSlot& p : peers_) {
    if (!p.started) continue;
    const int code = p.proc.finish(std::chrono::milliseconds(static_cast<int64_t>(a_.grace_s * 1000)));
    if (code != 0 && !p.killed) {
      ++failed;
      std::fprintf(stderr, "netem run: peer %s exited with %d (see %s)\n", p.name.c_str(), code,
                   (p.dir / "node.log").c_str());
    }
  }
  notice_exits();
  return failed;
}

std::vector<fs::path> ScenarioRun::dirs() const {
  std::vector<fs::path> out;
  for (const PeerSlot& p : peers_) out.push_back(p.dir);
  return out;
}

std::vector<std::string> ScenarioRun::names() const {
  std::vector<std::string> out;
  for (const PeerSlot& p : peers_) out.push_back(p.name);
  return out;
}

void ScenarioRun::report(const std::string& ending, int failed) {
  std::vector<netem::PeerRun> runs;
  for (const PeerSlot& p : peers_) runs.push_back({p.name, p.dir});
  const std::vector<netem::RoundRow> rows = netem::read_rounds(runs, t0_unix_);
  netem::write_rounds_csv(runs, rows, out_ / "rounds.csv");
  netem::write_links_csv(s_, routes_, samples_, out_ / "links.csv");
  const json traffic = netem::traffic_totals(s_, routes_, samples_.back());
  const json extra = {{"scenario", s_.name},
                      {"ending", ending},
                      {"failed_peers", failed},
                      {"wall_s", seconds_since(t0_)},
                      {"traffic", traffic}};
  const json summary = launch::write_summary(dirs(), out_ / "summary.json", config_.algo, names(), extra);
  std::vector<fs::path> pngs;
  try {
    pngs = netem::plot_report(out_, s_, runs, rows, routes_, samples_);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "netem run: no plots: %s\n", e.what());
  }
  std::printf("\nnetem run %s (%s): report in %s\n%s", s_.name.c_str(), ending.c_str(), out_.c_str(),
              launch::summary_table(summary).c_str());
  std::printf("%s", netem::traffic_table(traffic).c_str());
  for (const fs::path& p : pngs) std::printf("plot: %s\n", p.c_str());
}

void ScenarioRun::run() {
  prepare();
  run::install_interrupt_handler();
  t0_ = std::chrono::steady_clock::now();
  t0_unix_ = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  netem::Nanos limit = s_.duration;
  if (!a_.duration.empty()) {
    try {
      limit = netem::parse_duration(a_.duration);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--duration: ") + e.what());
    }
  }
  const double duration = std::chrono::duration<double>(limit).count();
  std::printf(
      "netem run %s: %zu peers, %zu links (%s backend), %s, up to %.0f s; peers' logs in "
      "%s/peer-*/node.log\n",
      s_.name.c_str(), peers_.size(), routes_.size(), a_.backend.c_str(), config_.algo.c_str(), duration,
      out_.c_str());
  std::string ending = "finished";
  int failed = 0;
  try {
    sample_links();
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (s_.peers[i].starts) start_peer(i, true);
    }
    size_t next_event = 0;
    double next_sample = a_.sample_s, next_progress = a_.progress_s;
    for (;;) {
      const double t = seconds_since(t0_);
      while (next_event < s_.events.size() &&
             std::chrono::duration<double>(s_.events[next_event].at).count() <= t)
        apply(s_.events[next_event++]);
      notice_exits();
      if (run::interrupted()) {
        ending = "interrupted";
        break;
      }
      if (t >= duration) {
        ending = "duration reached";
        break;
      }
      if (std::none_of(peers_.begin(), peers_.end(), [](PeerSlot& p) { return p.proc.running(); }) &&
          !start_pending(next_event))
        break;
      if (t >= next_sample) {
        sample_links();
        next_sample += a_.sample_s;
      }
      if (t >= next_progress) {
        uint64_t bytes = 0;
        double rate = 0;
        for (const netem::LinkStats& l : samples_.back().links) {
          bytes += l.up.bytes + l.down.bytes;
          rate += l.up.rate_bps + l.down.rate_bps;
        }
        std::printf("%s | links %.1f MB %s\n", launch::progress_line(dirs(), t, names()).c_str(),
                    double(bytes) / 1e6, netem::format_rate(rate).c_str());
        std::fflush(stdout);
        next_progress += a_.progress_s;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  } catch (const std::exception& e) {
    ending = std::string("error: ") + e.what();
    std::fprintf(stderr, "netem run: %s; stopping every peer\n", e.what());
  }
  failed = stop_all();
  sample_links();
  note({{"event", "end"}, {"ending", ending}});
  report(ending, failed);
  if (ending.rfind("error", 0) == 0) throw std::runtime_error(ending.substr(7));
  if (failed) throw std::runtime_error(std::to_string(failed) + " peer(s) failed");
}

}  // namespace

void add_netem_run(CLI::App& netem) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* sub = netem.add_subcommand("run", "Run a WAN scenario: peers as processes, every link shaped");
  sub->footer(
      "Each peer of the scenario runs `murmur node --config DIR/run.toml` (the scenario's [training]\n"
      "table; its keys are `murmur node` flag names) with its own keys, port and run directory\n"
      "DIR/peer-NAME. Every dial from one peer to another goes through its own relay link, shaped by\n"
      "the two sites' profile (--dial-via) and, between sites, their shared uplink and downlink where\n"
      "declared; with --backend tc each peer runs in its own network\n"
      "namespace and the kernel's tc netem shapes its packets instead. A peer's compute factor times "
      "base_tokens_per_s (in\n"
      "[training], or --base-tokens-per-s) throttles it; 0 = unthrottled. The timeline runs from the\n"
      "start: kill (SIGKILL), restart (same keys, --resume from its checkpoint), join, partition,\n"
      "heal, set_link, set_site; each event goes to DIR/events.jsonl. The run stops when every peer has "
      "exited,\n"
      "at the scenario's duration or on Ctrl-C (peers get SIGTERM and save a checkpoint), and always\n"
      "writes the report: DIR/summary.json (per peer: final losses, tokens, bytes, wait on the\n"
      "network; traffic per link and between sites), rounds.csv (every peer's rounds), links.csv\n"
      "(link counters over time), loss_vs_time.png, loss_vs_bytes.png, link_utilisation.png.\n"
      "Flags after `--` go to every peer.");
  sub->add_option("scenario", a->scenario, "Scenario file (netem/scenarios/*.toml, docs/netem.md)")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--out", a->out, "Directory for the peers' runs and the report")->required();
  sub->add_option("--algo", a->algo, "Override the scenario's algorithm")
      ->check(CLI::IsMember({"gossip", "local", "allreduce", "diloco"}));
  sub->add_option("--duration", a->duration, "Override the scenario's duration, e.g. 2min");
  sub->add_option("--backend", a->backend,
                  "relay: user-space TCP relays on loopback (no privileges; no packet loss). tc: each peer "
                  "in a network namespace behind the kernel's tc netem (root and sch_netem needed; "
                  "adds loss, duplicate, reorder)")
      ->capture_default_str()
      ->check(CLI::IsMember({"relay", "tc"}));
  sub->add_option("--base-tokens-per-s", a->base_tokens_per_s,
                  "Tokens/s of a peer with compute factor 1.0 (overrides [training] base_tokens_per_s; 0 = "
                  "unthrottled)")
      ->check(CLI::Range(0.0, 1e12));
  sub->add_option("--progress-s", a->progress_s, "Seconds between progress lines")
      ->capture_default_str()
      ->check(CLI::Range(0.2, 3600.0));
  sub->add_option("--sample-s", a->sample_s, "Seconds between samples of the link counters (links.csv)")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  sub->add_option("--grace-s", a->grace_s, "Seconds a peer gets to save and exit before SIGKILL")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600.0));
  sub->add_option("extra", a->extra, "Flags for every peer (after --)");
  sub->callback([a] {
    ScenarioRun run(*a, netem::load_scenario(a->scenario));
    run.run();
  });
}

}  // namespace murmur::cli

#include "netem/tc_emulator.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

extern char** environ;

namespace murmur::netem {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kUnlimitedAsBps = 10e9;  // queue sizing only: an unshaped veth carries about this much

std::string hex(size_t v) {
  char b[20];
  std::snprintf(b, sizeof b, "%zx", v);
  return b;
}
// Destination j's class minor and netem handle major: 1 is the htb root, 1:1 the default class.
std::string class_id(size_t to) { return "1:" + hex(to + 2); }
std::string netem_handle(size_t to) { return hex(to + 2) + ":"; }

std::string micros(Nanos d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count()) + "us";
}

std::string percent(double p) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g%%", p);
  return b;
}

Argv tc(const std::string& ns, Argv args) {
  args.insert(args.begin(), {"tc", "-n", ns});
  return args;
}
Argv ip(const std::string& ns, Argv args) {
  args.insert(args.begin(), {"ip", "-n", ns});
  return args;
}

// iproute2's tools live in /usr/sbin or /sbin, often outside a user's PATH.
std::string find_tool(const std::string& name) {
  std::vector<std::string> dirs = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    for (size_t at = 0; at <= p.size();) {
      const size_t colon = std::min(p.find(':', at), p.size());
      if (colon > at) dirs.insert(dirs.begin(), p.substr(at, colon - at));
      at = colon + 1;
    }
  }
  for (const std::string& d : dirs) {
    const std::filesystem::path f = std::filesystem::path(d) / name;
    if (::access(f.c_str(), X_OK) == 0) return f.string();
  }
  throw std::runtime_error("--backend tc: needs iproute2's `" + name + "` (apt-get install iproute2)");
}

struct ToolResult {
  int code = 0;
  std::string output;  // stdout and stderr together
};

ToolResult run_tool(const Argv& argv) {
  Argv args = argv;
  args[0] = find_tool(args[0]);
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("--backend tc: pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  pid_t pid = 0;
  const int err = posix_spawn(&pid, args[0].c_str(), &fa, nullptr, cargs.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  ToolResult r;
  if (err != 0) {
    ::close(fds[0]);
    throw std::runtime_error("--backend tc: cannot run " + args[0]);
  }
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n > 0)
      r.output.append(buf, size_t(n));
    else if (errno != EINTR)
      break;
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string first_line(const std::string& s) {
  const std::string line = s.substr(0, s.find('\n'));
  return line.empty() ? "(no message)" : line;
}

std::string joined(const Argv& a) {
  std::string s;
  for (const std::string& x : a) s += (s.empty() ? "" : " ") + x;
  return s;
}

void must(const Argv& argv) {
  const ToolResult r = run_tool(argv);
  if (r.code != 0)
    throw std::runtime_error("--backend tc: `" + joined(argv) + "` failed: " + first_line(r.output));
}

class TcEmulator final : public LinkEmulator {
 public:
  TcEmulator(const std::vector<Route>& routes, size_t peers)
      : routes_(routes),
        topo_(tc_topology(peers, uint32_t(::getpid()))),
        pair_(pair_profiles(routes, peers)),
        cut_(peers, std::vector<bool>(peers, false)),
        last_(peers, std::vector<Sample>(peers)),
        read_at_(peers) {
    if (::geteuid() != 0)
      throw std::runtime_error("--backend tc: needs root (CAP_NET_ADMIN) to create network namespaces");
    try {  // tc_setup_commands checks every profile before the first command runs
      for (const Argv& cmd : tc_setup_commands(topo_, pair_)) {
        must(cmd);
        if (cmd.size() < 4 || cmd[0] != "ip" || cmd[1] != "netns" || cmd[2] != "add") continue;
        created_.push_back(cmd[3]);
        if (cmd[3] == topo_.hub) check_netem();
      }
    } catch (...) {
      teardown();
      throw;
    }
  }
  ~TcEmulator() override { teardown(); }

  std::string host(size_t peer) const override { return topo_.peer_addr.at(peer); }
  std::vector<std::string> command_prefix(size_t peer) const override {
    return {find_tool("ip"), "netns", "exec", topo_.peer_ns.at(peer)};
  }
  std::vector<std::string> peer_flags(size_t) const override { return {}; }

  // The two routes of a pair (i dials j, j dials i) share its qdiscs; an event selects both, and
  // cutting or healing a pair twice changes nothing, as on the relay.
  void partition(size_t route, PartitionMode) override { set_cut(route, true); }
  void heal(size_t route) override { set_cut(route, false); }
  void set_profile(size_t route, Direction dir, const LinkProfile& p) override {
    const Route& r = routes_.at(route);
    const auto [a, b] =
        dir == Direction::up ? std::pair{r.dialer, r.listener} : std::pair{r.listener, r.dialer};
    pair_[a][b] = p;
    apply(a, b);
  }
  void set_site(size_t, Direction, const LinkProfile&) override {
    throw std::logic_error("--backend tc has no shared site links (check_tc_scenario refuses them)");
  }
  // A qdisc carries everything from one peer to another, whichever dialed: its bytes count once, as the
  // `up` of the route its sender dials (the reverse route's `down` stays 0).
  LinkStats stats(size_t route) override {
    const Route& r = routes_.at(route);
    LinkStats s;
    s.up = direction_stats(r.dialer, r.listener);
    s.partitioned = cut_[r.dialer][r.listener];
    return s;
  }

 private:
  struct Sample {
    uint64_t bytes = 0, backlog = 0;
    double rate_bps = 0;
    Clock::time_point at{};
  };

  // The kernel may lack sch_netem (tc: "Specified qdisc kind is unknown"): asked once the hub exists,
  // before anything else is built.
  void check_netem() {
    const ToolResult r =
        run_tool(tc(topo_.hub, {"qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"}));
    if (r.code != 0)
      throw std::runtime_error("--backend tc: this kernel cannot run tc netem (" + first_line(r.output) +
                               ": sch_netem is missing); the default relay backend needs no kernel support");
  }

  void set_cut(size_t route, bool cut) {
    const Route& r = routes_.at(route);
    for (auto [a, b] : {std::pair{r.dialer, r.listener}, std::pair{r.listener, r.dialer}}) {
      if (cut_[a][b] == cut) continue;
      cut_[a][b] = cut;
      apply(a, b);
    }
  }

  void apply(size_t from, size_t to) {
    LinkProfile p = pair_[from][to];
    if (cut_[from][to]) p.loss = 100;
    must(tc_change_command(topo_, from, to, p));
  }

  // Reads every netem qdisc of `from` once per half second (one `tc -s -j` per peer, not per route).
  DirectionStats direction_stats(size_t from, size_t to) {
    const auto now = Clock::now();
    if (now - read_at_[from] > std::chrono::milliseconds(500)) refresh(from, now);
    const Sample& s = last_[from][to];
    return {s.bytes, s.backlog, s.rate_bps};
  }

  void refresh(size_t from, Clock::time_point now) {
    read_at_[from] = now;
    const ToolResult r = run_tool(tc(topo_.peer_ns[from], {"-s", "-j", "qdisc", "show", "dev", "eth0"}));
    const nlohmann::json j = nlohmann::json::parse(r.output, nullptr, false);
    if (r.code != 0 || !j.is_array()) return;  // counters stay as they were; the run goes on
    for (const auto& q : j) {
      if (q.value("kind", "") != "netem") continue;
      const std::string h = q.value("handle", "");
      const size_t major = std::strtoul(h.c_str(), nullptr, 16);
      if (major < 2 || major - 2 >= last_[from].size()) continue;
      Sample& s = last_[from][major - 2];
      const uint64_t bytes = q.value("bytes", uint64_t{0});
      const double dt = std::chrono::duration<double>(now - s.at).count();
      if (s.at != Clock::time_point{} && dt > 0)
        s.rate_bps = double(bytes - std::min(bytes, s.bytes)) * 8 / dt;
      s.bytes = bytes;
      s.backlog = q.value("backlog", uint64_t{0});
      s.at = now;
    }
  }

  void teardown() {
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
      try {
        run_tool({"ip", "netns", "del", *it});
      } catch (...) {  // best effort: the others still go
      }
    }
    created_.clear();
  }

  std::vector<Route> routes_;
  TcTopology topo_;
  std::vector<std::vector<LinkProfile>> pair_;
  std::vector<std::vector<bool>> cut_;  // [from][to]: partitioned
  std::vector<std::vector<Sample>> last_;
  std::vector<Clock::time_point> read_at_;  // last `tc -s` of each peer
  std::vector<std::string> created_;        // namespaces to delete, in creation order
};

}  // namespace

TcTopology tc_topology(size_t peers, uint32_t tag) {
  if (peers > 250 * 250) throw std::invalid_argument("tc backend: too many peers");
  const std::string base = "mm" + hex(tag & 0xffffff);
  TcTopology t;
  t.hub = base + "-h";
  for (size_t i = 0; i < peers; ++i) {
    t.peer_ns.push_back(base + "-" + std::to_string(i));
    t.peer_addr.push_back("10.201." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
  }
  return t;
}

Argv netem_options(const LinkProfile& p) {
  validate(p);
  if (p.reorder > 0 && p.delay == Nanos(0))
    throw std::invalid_argument("reorder needs a delay (netem reorders by letting packets skip it)");
  Argv a = {"delay", micros(p.delay)};
  if (p.jitter > Nanos(0)) a.push_back(micros(p.jitter));  // uniform, as the relay's
  if (!std::isinf(p.rate_bps))
    a.insert(a.end(), {"rate", std::to_string(uint64_t(std::llround(p.rate_bps))) + "bit"});
  if (p.loss > 0) a.insert(a.end(), {"loss", percent(p.loss)});
  if (p.duplicate > 0) a.insert(a.end(), {"duplicate", percent(p.duplicate)});
  if (p.reorder > 0) a.insert(a.end(), {"reorder", percent(p.reorder)});
  const double bps = std::isinf(p.rate_bps) ? kUnlimitedAsBps : p.rate_bps;
  const double seconds = std::chrono::duration<double>(p.delay + p.jitter).count() + 0.05;
  const double packets = std::clamp(2 * bps / 8 * seconds / 1500, 1000.0, 1e6);
  a.insert(a.end(), {"limit", std::to_string(uint64_t(packets))});
  return a;
}

std::vector<std::vector<LinkProfile>> pair_profiles(const std::vector<Route>& routes, size_t peers) {
  std::vector<std::vector<LinkProfile>> pair(peers, std::vector<LinkProfile>(peers));
  for (const Route& r : routes) {
    if (r.dialer >= peers || r.listener >= peers)
      throw std::invalid_argument("pair_profiles: route out of range");
    pair[r.dialer][r.listener] = r.shape.up;
    pair[r.listener][r.dialer] = r.shape.down;
  }
  return pair;
}

std::vector<Argv> tc_setup_commands(const TcTopology& t, const std::vector<std::vector<LinkProfile>>& pair) {
  const size_t n = t.peer_ns.size();
  std::vector<Argv> c = {{"ip", "netns", "add", t.hub},
                         ip(t.hub, {"link", "set", "lo", "up"}),
                         ip(t.hub, {"link", "add", "br0", "type", "bridge"}),
                         ip(t.hub, {"link", "set", "br0", "up"})};
  for (size_t i = 0; i < n; ++i) {
    const std::string& ns = t.peer_ns[i];
    const std::string port = "v" + std::to_string(i);
    c.push_back({"ip", "netns", "add", ns});
    c.push_back(ip(ns, {"link", "set", "lo", "up"}));
    c.push_back(ip(t.hub, {"link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns}));
    c.push_back(ip(t.hub, {"link", "set", port, "master", "br0", "up"}));
    c.push_back(ip(ns, {"addr", "add", t.peer_addr[i] + "/16", "dev", "eth0"}));
    c.push_back(ip(ns, {"link", "set", "eth0", "up"}));
    // Unmatched traffic (ARP) takes the default class 1:1, unshaped.
    c.push_back(tc(ns, {"qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1"}));
    c.push_back(
        tc(ns, {"class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit"}));
    for (size_t j = 0; j < n; ++j) {
      if (j == i) continue;
      c.push_back(tc(ns, {"class", "add", "dev", "eth0", "parent", "1:", "classid", class_id(j), "htb",
                          "rate", "10gbit"}));
      Argv q =
          tc(ns, {"qdisc", "add", "dev", "eth0", "parent", class_id(j), "handle", netem_handle(j), "netem"});
      for (std::string& o : netem_options(pair.at(i).at(j))) q.push_back(std::move(o));
      c.push_back(std::move(q));
      c.push_back(tc(ns, {"filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1",
                          "u32", "match", "ip", "dst", t.peer_addr[j] + "/32", "flowid", class_id(j)}));
    }
  }
  return c;
}

Argv tc_change_command(const TcTopology& t, size_t from, size_t to, const LinkProfile& p) {
  Argv c = tc(t.peer_ns.at(from), {"qdisc", "change", "dev", "eth0", "parent", class_id(to), "handle",
                                   netem_handle(to), "netem"});
  for (std::string& o : netem_options(p)) c.push_back(std::move(o));
  return c;
}

void check_tc_scenario(const Scenario& s) {
  if (s.shares_wan())
    throw std::invalid_argument(
        "--backend tc: sites' uplink and downlink (a WAN shared by a site's peers) are emulated by the relay "
        "backend and the simulator only; drop them from [[site]] or use the relay");
}

std::unique_ptr<LinkEmulator> make_tc_emulator(const std::vector<Route>& routes, size_t peers) {
  return std::make_unique<TcEmulator>(routes, peers);
}

}  // namespace murmur::netem

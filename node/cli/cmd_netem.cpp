// murmur netem relay: one shaped link in the foreground; murmur bench netem: shaping accuracy and the
// relay's unshaped throughput beside a direct loopback transfer (the baseline) in the same run.
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "netem/probe.h"
#include "netem/relay.h"
#include "node/cli/commands.h"
#include "node/run/interrupt.h"

namespace murmur::cli {
namespace {

using netem::LinkProfile;

// Flags as text, parsed strictly so an error names the flag.
struct ProfileFlags {
  std::string bandwidth = "unlimited", delay = "0ms", jitter = "0ms", burst;
};

struct RelayArgs {
  std::string listen, to, duration;
  ProfileFlags both, up, down;
};

template <class F>
auto flag(const std::string& name, const std::string& text, F parse) {
  try {
    return parse(text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("--" + name + ": " + e.what());
  }
}

LinkProfile to_profile(const std::string& dir, const ProfileFlags& f, const ProfileFlags& both) {
  // A direction's own flag wins over the common one; errors name the flag that was given.
  const auto parse = [&](const std::string& name, const std::string& own, const std::string& common,
                         auto fn) {
    return own.empty() ? flag(name, common, fn) : flag(dir + "-" + name, own, fn);
  };
  const auto duration = [](const std::string& s) {
    return netem::parse_duration(s, std::chrono::seconds(60));
  };
  LinkProfile out;
  out.rate_bps = parse("bandwidth", f.bandwidth, both.bandwidth, netem::parse_bandwidth);
  out.delay = parse("delay", f.delay, both.delay, duration);
  out.jitter = parse("jitter", f.jitter, both.jitter, duration);
  if (!f.burst.empty() || !both.burst.empty())
    out.burst_bytes = parse("burst", f.burst, both.burst, netem::parse_bytes);
  netem::validate(out);
  return out;
}

std::string describe(const LinkProfile& p) {
  return netem::format_rate(p.rate_bps) + ", delay " + netem::format_duration(p.delay) + " +- " +
         netem::format_duration(p.jitter);
}

std::string bytes_text(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", double(b) / 1e6);
  return buf;
}

void run_relay(const RelayArgs& a) {
  netem::LinkConfig cfg;
  cfg.listen = flag("listen", a.listen, [](const std::string& s) { return netem::parse_host_port(s, true); });
  cfg.target = flag("to", a.to, [](const std::string& s) { return netem::parse_host_port(s); });
  cfg.shape.up = to_profile("up", a.up, a.both);
  cfg.shape.down = to_profile("down", a.down, a.both);
  const auto limit = a.duration.empty() ? netem::Nanos::max()
                                        : flag("duration", a.duration,
                                               [](const std::string& s) { return netem::parse_duration(s); });
  run::install_interrupt_handler();
  netem::Relay relay;
  const netem::LinkId id = relay.add_link(cfg);
  std::printf("murmur netem: %s:%u -> %s:%u; up %s; down %s (Ctrl-C stops)\n", cfg.listen.host.c_str(),
              relay.port(id), cfg.target.host.c_str(), cfg.target.port, describe(cfg.shape.up).c_str(),
              describe(cfg.shape.down).c_str());
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  while (!run::interrupted() && std::chrono::steady_clock::now() - start < limit) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const netem::LinkStats s = relay.stats(id);
    std::printf("up %s (%s)  down %s (%s)  connections %llu%s\n", bytes_text(s.up.bytes).c_str(),
                netem::format_rate(s.up.rate_bps).c_str(), bytes_text(s.down.bytes).c_str(),
                netem::format_rate(s.down.rate_bps).c_str(), static_cast<unsigned long long>(s.connections),
                s.partitioned ? "  PARTITIONED" : "");
    std::fflush(stdout);
  }
}

struct BenchArgs {
  uint64_t bytes = uint64_t(1) << 30;
  double seconds = 1.5;
  bool json = false;
};

void run_bench(const BenchArgs& a) {
  if (a.bytes < (1 << 20) || a.bytes > (uint64_t(1) << 36))
    throw std::invalid_argument("--bytes: 1 MiB .. 64 GiB");
  if (!(a.seconds >= 0.2 && a.seconds <= 60)) throw std::invalid_argument("--seconds: 0.2 .. 60");
  netem::ProbeServer sink;
  netem::Relay relay;
  const auto add = [&](const LinkProfile& up) {
    return relay.add_link(
        {.listen = {"127.0.0.1", 0}, .target = {"127.0.0.1", sink.port()}, .shape = {up, {}}});
  };
  const double direct_s = netem::timed_transfer(sink.port(), a.bytes, false, std::chrono::minutes(5));
  const double relay_s = netem::timed_transfer(relay.port(add({})), a.bytes, false, std::chrono::minutes(5));
  nlohmann::json shaped = nlohmann::json::array();
  for (const double mbit : {1.0, 10.0, 100.0, 1000.0}) {
    const double rate = mbit * 1e6;
    const uint64_t bytes = uint64_t(rate / 8 * a.seconds);
    const double s =
        netem::timed_transfer(relay.port(add({.rate_bps = rate})), bytes, false, std::chrono::minutes(5));
    const double goodput = double(bytes) * 8 / s;
    shaped.push_back({{"setting_mbit", mbit},
                      {"bytes", bytes},
                      {"seconds", s},
                      {"goodput_mbit", goodput / 1e6},
                      {"error_pct", 100 * (goodput / rate - 1)}});
  }
  const nlohmann::json j = {{"bytes", a.bytes},
                            {"direct_gbps", double(a.bytes) / direct_s / 1e9},
                            {"relay_unshaped_gbps", double(a.bytes) / relay_s / 1e9},
                            {"relay_vs_direct", direct_s / relay_s},
                            {"shaped", shaped}};
  if (a.json) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("unshaped, %s: direct loopback %.2f GB/s, through the relay %.2f GB/s (%.0f%%)\n",
              bytes_text(a.bytes).c_str(), j["direct_gbps"].get<double>(),
              j["relay_unshaped_gbps"].get<double>(), 100 * j["relay_vs_direct"].get<double>());
  for (const auto& s : shaped) {
    std::printf("setting %6.0f Mbit/s: goodput %8.2f Mbit/s (%+.2f%%)\n", s["setting_mbit"].get<double>(),
                s["goodput_mbit"].get<double>(), s["error_pct"].get<double>());
  }
}

void add_profile_flags(CLI::App* sub, ProfileFlags& f, const std::string& dir, const std::string& what) {
  const std::string p = dir.empty() ? "--" : "--" + dir + "-";
  sub->add_option(p + "bandwidth", f.bandwidth,
                  "Bandwidth" + what + ": 10mbit, 1gbit, 500kbit, 64kbps, 2MB (bytes/s), unlimited");
  sub->add_option(p + "delay", f.delay, "One-way delay" + what + ": 20ms, 500us, 1s");
  sub->add_option(p + "jitter", f.jitter, "Jitter" + what + " (uniform +-, never reorders bytes): 2ms");
  sub->add_option(p + "burst", f.burst, "Token bucket size" + what + ": 64KiB (default: 5 ms at the rate)");
}

}  // namespace

void add_netem_command(CLI::App& app) {
  CLI::App* netem = app.add_subcommand("netem", "WAN emulation: shaped TCP relays (docs/netem.md)");
  netem->require_subcommand(1);
  auto a = std::make_shared<RelayArgs>();
  a->up = a->down = ProfileFlags{"", "", "", ""};
  CLI::App* sub = netem->add_subcommand(
      "relay",
      "Run one shaped link in the foreground: accept on --listen, dial --to, forward both directions");
  sub->add_option("--listen", a->listen, "HOST:PORT to accept on (port 0: any free port)")->required();
  sub->add_option("--to", a->to, "HOST:PORT to dial for each accepted connection")->required();
  add_profile_flags(sub, a->both, "", " (both directions)");
  add_profile_flags(sub, a->up, "up", " from the dialer to --to");
  add_profile_flags(sub, a->down, "down", " from --to back to the dialer");
  sub->add_option("--duration", a->duration, "Stop after this long (default: until Ctrl-C), e.g. 10min");
  sub->callback([a] { run_relay(*a); });
}

void add_bench_netem(CLI::App& bench) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = bench.add_subcommand(
      "netem",
      "Relay accuracy and speed on loopback: goodput at 1/10/100/1000 Mbit/s settings, and unshaped relay "
      "throughput beside a direct TCP transfer in the same run");
  sub->add_option("--bytes", a->bytes, "Bytes of each unshaped transfer")->capture_default_str();
  sub->add_option("--seconds", a->seconds, "Length of each shaped transfer at its setting")
      ->capture_default_str();
  sub->add_flag("--json", a->json, "Print one JSON object instead of sentences");
  sub->callback([a] { run_bench(*a); });
}

}  // namespace murmur::cli

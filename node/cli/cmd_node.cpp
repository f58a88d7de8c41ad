// murmur node: one peer of a run. Loads its keys, opens the encrypted
// transport, joins the swarm through any known peer, and trains (or, with
// --algo none... see peer_train.h) until done; Ctrl-C saves and leaves cleanly.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <thread>

#include "gossip/peer_id.h"
#include "model/atomic_file.h"
#include "netem/units.h"
#include "node/cli/commands.h"
#include "node/net/keys.h"
#include "node/net/metrics.h"
#include "node/net/metrics_http.h"
#include "node/net/transport.h"
#include "node/peer/args.h"
#include "node/peer/net_loop.h"
#include "node/peer/run_settings.h"
#include "node/peer/training.h"
#include "node/run/interrupt.h"

namespace murmur::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string render_metrics(peer::PeerMailbox& mailbox, const net::MetricsRegistry& registry) {
  const peer::NetView v = mailbox.view();
  std::string out;
  out += net::prom_header("murmur_peers_known", "gauge", "Live peers this peer knows of (without itself)");
  out += net::prom_line("murmur_peers_known", static_cast<double>(v.members.size()));
  out += net::prom_header("murmur_neighbors", "gauge", "Neighbour links");
  out += net::prom_line("murmur_neighbors", static_cast<double>(v.neighbours));
  out += net::prom_header("murmur_bytes_sent_total", "counter", "Bytes sent on all links");
  out += net::prom_line("murmur_bytes_sent_total", static_cast<double>(v.bytes_sent));
  out += net::prom_header("murmur_bytes_received_total", "counter", "Bytes received on all links");
  out += net::prom_line("murmur_bytes_received_total", static_cast<double>(v.bytes_received));
  out += net::prom_header("murmur_messages_rejected_total", "counter",
                          "Messages dropped as malformed or refused");
  out += net::prom_line("murmur_messages_rejected_total", static_cast<double>(v.messages_rejected));
  out +=
      net::prom_header("murmur_reassembly_bytes", "gauge", "Memory reserved for partially received payloads");
  out += net::prom_line("murmur_reassembly_bytes", static_cast<double>(v.reassembly_bytes));
  return out + registry.render();
}

void run_node(peer::PeerArgs a, const std::set<std::string>& given) {
  peer::validate_peer_args(a);
  fs::create_directories(a.out);
  const net::Keys keys = net::load_keys(a.keys);
  net::TransportConfig tc;
  tc.keys = keys;
  tc.listen = a.listen;
  tc.admission.open = a.open;
  if (!a.open) tc.admission.allowed = net::load_allow_list(a.allow);
  const peer::ReassemblyLimits limits = peer::reassembly_limits(a);
  tc.max_payload_bytes = limits.max_payload_bytes;
  tc.max_reassembly_bytes = limits.max_reassembly_bytes;
  tc.reassembly_timeout = limits.timeout;
  for (const auto& d : a.dial_via) {
    const size_t eq = d.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == d.size())
      throw std::invalid_argument("--dial-via '" + d +
                                  "': expected ADDR=VIA, e.g. tcp://10.0.0.2:7000=tcp://127.0.0.1:9001");
    tc.dial_map[d.substr(0, eq)] = d.substr(eq + 1);
  }
  if (!a.join.empty()) {
    // What this peer did not set it takes from the run (a joiner needs only the join address, its keys
    // and its data); what it did set and differs, the run refuses at join, naming it.
    std::printf("asking %s for the run's settings...\n", a.join.front().c_str());
    std::fflush(stdout);
    const auto run = peer::ask_run_identity(tc, a.join.front(), std::chrono::seconds(10));
    if (!run) {
      std::printf("no answer in 10 s: joining with this peer's own settings\n");
    } else if (const std::string took = peer::adopt_run_settings(a, *run, given); !took.empty()) {
      std::printf("settings taken from the run (the run's value here, the flag's or default there): %s\n",
                  took.c_str());
      peer::validate_peer_args(a);
    }
    std::fflush(stdout);
  }
  const gossip::MembershipConfig::Reach reach = peer::reach_of(a);
  // A peer others may be unable to dial opens both its connections at once: they answer over them.
  tc.eager_bulk = reach != gossip::MembershipConfig::Reach::assumed;
  net::Transport transport(tc);
  gossip::PeerInfo self{keys.id, a.advertise.empty() ? transport.endpoint() : a.advertise,
                        // A restart must outbid its earlier incarnation: the wall clock does.
                        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  std::chrono::system_clock::now().time_since_epoch())
                                                  .count())};
  if (a.open)
    std::printf("WARNING: --open: any peer that can reach %s may join this run\n", self.addr.c_str());
  if (reach == gossip::MembershipConfig::Reach::outbound)
    std::printf("peer %s: outbound-only (--reachability outbound), others answer over its connections\n",
                gossip::short_name(keys.id).c_str());
  else
    std::printf(
        "peer %s listening on %s%s\n  join it with: --join %s@%s\n", gossip::short_name(keys.id).c_str(),
        self.addr.c_str(),
        reach == gossip::MembershipConfig::Reach::check ? " (advertised once a peer dials it back)" : "",
        gossip::to_z85(keys.id).c_str(), self.addr.substr(6).c_str());
  std::fflush(stdout);

  run::JsonlLog log(fs::path(a.out) / "log.jsonl");
  peer::PeerMailbox mailbox;
  peer::NetLoopOptions no;
  no.join = a.join;
  no.membership.target_degree = a.degree;
  no.membership.max_degree = a.max_degree;
  no.membership.link_lifetime = gossip::Millis(a.link_lifetime_s * 1000);
  no.membership.run = peer::run_identity(a);
  no.membership.reach = reach;
  no.membership.relay = a.relay;
  if (a.relay) {
    const auto host = [](const std::string& addr) {  // tcp://HOST:PORT -> HOST
      const std::string hp = addr.substr(addr.find("://") == std::string::npos ? 0 : addr.find("://") + 3);
      return hp.substr(0, hp.rfind(':'));
    };
    no.relay = true;
    no.relay_bandwidth_bps = netem::parse_bandwidth(a.relay_bandwidth);
    no.relay_bind = host(a.listen);
    no.relay_host = host(self.addr);
    std::printf("relay: on, for peers nobody can dial, at %s, capped at %s\n", no.relay_host.c_str(),
                a.relay_bandwidth.c_str());
  }
  no.ring_payloads = a.algo == "allreduce" || a.algo == "diloco";
  // Per-peer series name the allow-list's peers only: in open mode every peer is "unknown".
  net::MetricsRegistry registry(tc.admission.allowed);
  no.metrics = &registry;
  std::unique_ptr<net::MetricsServer> metrics;
  if (a.metrics_port >= 0) {
    metrics = std::make_unique<net::MetricsServer>(a.metrics_port,
                                                   [&] { return render_metrics(mailbox, registry); });
    std::printf("metrics: http://127.0.0.1:%d/metrics\n", metrics->port());
  }
  run::install_interrupt_handler();
  peer::NetLoop net(transport, self, no, mailbox, &log,
                    a.train.seed ^ keys.id[0] ^ (uint64_t{keys.id[1]} << 8));
  std::thread net_thread([&] { net.run(); });
  json summary;
  try {
    summary = peer::run_peer_training(a, keys.id, mailbox, log, registry);
  } catch (...) {
    mailbox.stop();
    net_thread.join();
    throw;
  }
  mailbox.stop();
  net_thread.join();
  const peer::NetView v = mailbox.view();  // final counters, after the goodbyes
  summary["bytes_sent"] = v.bytes_sent;
  summary["bytes_received"] = v.bytes_received;
  summary["messages_rejected"] = v.messages_rejected;
  write_text_atomic(fs::path(a.out) / "summary.json", summary.dump(2) + "\n");
  const std::string status = summary.value("status", std::string("done"));
  std::printf("%s: summary %s\n", status.c_str(), (fs::path(a.out) / "summary.json").c_str());
  if (status.rfind("stopped", 0) == 0) throw std::runtime_error(status);  // saved, but did not finish
}

}  // namespace

void add_node_command(CLI::App& app) {
  auto a = std::make_shared<peer::PeerArgs>();
  CLI::App* sub = app.add_subcommand("node", "Run one peer: join the swarm and train with its neighbours");
  sub->footer(
      "Settings can come from a TOML file (--config RUN.toml) whose keys are the flag names;\n"
      "flags on the command line win. Make keys with `murmur keygen`; a closed run admits only\n"
      "the public keys of --allow. Ctrl-C saves a checkpoint, says goodbye to the swarm and exits.");
  std::string config_unused;
  sub->add_option("--config", config_unused, "TOML file with flag values (keys = flag names)");
  peer::add_peer_options(*sub, *a);
  sub->callback([a, sub] {
    std::set<std::string> given;  // on the command line or in --config
    for (const std::string& flag : peer::kRunFlags)
      if (sub->count(flag) > 0) given.insert(flag);
    run_node(*a, given);
  });
}

}  // namespace murmur::cli

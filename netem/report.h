// The report of `murmur netem run` (docs/netem.md): every peer's rounds flattened into rounds.csv, the
// relay links' counters sampled over time into links.csv, traffic between sites, and PNG plots drawn by
// gnuplot (loss vs wall time, loss vs bytes sent, link utilisation between sites).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "netem/relay.h"
#include "netem/scenario.h"

namespace murmur::netem {

struct PeerRun {
  std::string name;           // scenario name, e.g. "eu-0"
  std::filesystem::path dir;  // its run directory (log.jsonl, summary.json)
};

// One "round" event of a peer's log.jsonl. Fields the log lacks are NaN.
struct RoundRow {
  size_t peer = 0;
  double round = 0, step = 0, loss = 0, val_loss = 0, bytes_sent = 0, bytes_received = 0, wait_s = 0,
         consensus_distance = 0;
  double time_s = 0;  // since the run started
};

// Every peer's round events in log order (a restarted peer appends to the same log); torn or foreign
// lines are skipped. run_start_unix: the runner's start, Unix seconds (the logs' "time" clock).
std::vector<RoundRow> read_rounds(const std::vector<PeerRun>& peers, double run_start_unix);
void write_rounds_csv(const std::vector<PeerRun>& peers, const std::vector<RoundRow>& rows,
                      const std::filesystem::path& csv);

// The counters of every relay link at one moment; links[k] belongs to routes[k].
struct LinkSample {
  double time_s = 0;
  std::vector<LinkStats> links;
};

void write_links_csv(const Scenario& s, const std::vector<Route>& routes,
                     const std::vector<LinkSample>& samples, const std::filesystem::path& csv);

// Totals at the last sample: {"links": [{link, bytes_up, bytes_down}...], "sites": [{from, to, bytes}...]}
// where a site flow counts the bytes that went from a peer of `from` to a peer of `to`.
nlohmann::json traffic_totals(const Scenario& s, const std::vector<Route>& routes, const LinkSample& last);

// The site flows of traffic_totals as lines of text for the terminal.
std::string traffic_table(const nlohmann::json& totals);

// Writes DIR/plots.gp and runs gnuplot on it: loss_vs_time.png, loss_vs_bytes.png and (when any bytes
// moved) link_utilisation.png. Returns the PNGs written; throws std::runtime_error if gnuplot fails.
std::vector<std::filesystem::path> plot_report(const std::filesystem::path& dir, const Scenario& s,
                                               const std::vector<PeerRun>& peers,
                                               const std::vector<RoundRow>& rows,
                                               const std::vector<Route>& routes,
                                               const std::vector<LinkSample>& samples);

// Saves `text` as `script` (so a user can re-run or edit it) and pipes it to gnuplot; throws
// std::runtime_error when gnuplot is missing or fails.
void run_gnuplot(const std::filesystem::path& script, const std::string& text);

}  // namespace murmur::netem

// Progress and summaries of a set of local peers, read from their run
// directories (log.jsonl, summary.json): shared by `murmur swarm` and
// `murmur netem run`.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace murmur::launch {

// One line: elapsed time, then per peer its round, step and last loss. Peers
// are shown as p0, p1, ... or by `names` when given (one per directory).
std::string progress_line(const std::vector<std::filesystem::path>& peer_dirs, double elapsed_s,
                          const std::vector<std::string>& names = {});
// Collects every peer's summary.json (a peer without one is listed as failed)
// into {"algo", "peers": [...], "mean": {...}}, written atomically to `path`.
// `names` (when given) adds each peer's "name"; `extra`'s fields are added at
// the top level (e.g. the netem runner's scenario and traffic per link).
nlohmann::json write_summary(const std::vector<std::filesystem::path>& peer_dirs,
                             const std::filesystem::path& path, const std::string& algo,
                             const std::vector<std::string>& names = {},
                             const nlohmann::json& extra = nlohmann::json::object());
// The summary as an aligned text table for the terminal.
std::string summary_table(const nlohmann::json& summary);

}  // namespace murmur::launch

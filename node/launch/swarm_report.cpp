#include "node/launch/swarm_report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <utility>
#include <vector>

#include "model/atomic_file.h"

namespace murmur::launch {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The last complete lines of a JSONL file that parse and are events "round" and "steps", in one read
// (files are appended to while we read; a torn last line is skipped).
std::pair<json, json> last_round_and_steps(const fs::path& log) {
  std::ifstream f(log);
  std::string line;
  std::pair<json, json> last;
  while (std::getline(f, line)) {
    const json e = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!e.is_object()) continue;
    const std::string kind = e.value("event", "");
    if (kind == "round") last.first = e;
    if (kind == "steps") last.second = e;
  }
  return last;
}

std::string fmt(const json& v, const char* format, double scale = 1.0) {
  if (!v.is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v.get<double>() * scale);
  return buf;
}

}  // namespace

std::string progress_line(const std::vector<fs::path>& peer_dirs, double elapsed_s,
                          const std::vector<std::string>& names) {
  char head[32];
  std::snprintf(head, sizeof head, "[%6.0fs]", elapsed_s);
  std::string line = head;
  for (size_t i = 0; i < peer_dirs.size(); ++i) {
    // Rounds may take minutes: the step and loss come from the newer of the round and steps events.
    const auto [r, s] = last_round_and_steps(peer_dirs[i] / "log.jsonl");
    const auto step = [](const json& e) { return e.is_object() ? e.value("step", int64_t{0}) : 0; };
    const json& e = step(s) > step(r) ? s : r;
    line += " | " + (i < names.size() ? names[i] : "p" + std::to_string(i)) + " ";
    line += e.is_null() ? std::string("starting")
                        : "r" + (r.is_object() ? r.value("round", json(0)) : json(0)).dump() + " s" +
                              e.value("step", json()).dump() + " " + fmt(e.value("loss", json()), "%.3f");
  }
  return line;
}

json write_summary(const std::vector<fs::path>& peer_dirs, const fs::path& path, const std::string& algo,
                   const std::vector<std::string>& names, const json& extra) {
  json peers = json::array();
  double sum_val = 0, sum_train = 0, sum_sent = 0, sum_wait = 0;
  int n_val = 0, n = 0;
  for (size_t i = 0; i < peer_dirs.size(); ++i) {
    json s;
    std::ifstream f(peer_dirs[i] / "summary.json");
    if (f) s = json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (!s.is_object()) s = {{"status", "failed: no summary.json"}};
    s["peer"] = i;
    if (i < names.size()) s["name"] = names[i];
    s["dir"] = peer_dirs[i].string();
    if (s.contains("final_train_loss") && s["final_train_loss"].is_number()) {
      ++n;
      sum_train += s["final_train_loss"].get<double>();
      sum_sent += s.value("bytes_sent", 0.0);
      sum_wait += s.value("wait_s", 0.0);
      if (s.contains("final_val_loss") && s["final_val_loss"].is_number()) {
        ++n_val;
        sum_val += s["final_val_loss"].get<double>();
      }
    }
    peers.push_back(s);
  }
  json mean = json::object();
  if (n > 0) {
    mean["final_train_loss"] = sum_train / n;
    mean["bytes_sent"] = sum_sent / n;
    mean["wait_s"] = sum_wait / n;
  }
  if (n_val > 0) mean["final_val_loss"] = sum_val / n_val;
  json out = {{"algo", algo}, {"peers", peers}, {"mean", mean}};
  for (const auto& [key, value] : extra.items()) out[key] = value;
  write_text_atomic(path, out.dump(2) + "\n");
  return out;
}

std::string summary_table(const json& summary) {
  std::string t = "peer      status      rounds  steps    train   val      MB sent  MB recv  wait s\n";
  // The status column holds its first word ("stopped: <why>" -> "stopped"); the reasons follow the
  // table, once per distinct reason with the peers that gave it.
  std::vector<std::pair<std::string, std::string>> reasons;  // full status, peers
  for (const auto& p : summary["peers"]) {
    char row[256];
    const std::string peer = p.contains("name") ? p.value("name", std::string()) : p["peer"].dump();
    const std::string status = p.value("status", std::string("?"));
    if (const size_t colon = status.find(':'); colon != std::string::npos) {
      auto it =
          std::find_if(reasons.begin(), reasons.end(), [&](const auto& r) { return r.first == status; });
      if (it == reasons.end()) it = reasons.insert(reasons.end(), {status, ""});
      it->second += (it->second.empty() ? "" : ", ") + peer;
    }
    std::snprintf(row, sizeof row, "%-9s %-11s %-7s %-8s %-7s %-8s %-8s %-8s %s\n", peer.substr(0, 9).c_str(),
                  status.substr(0, std::min<size_t>(11, status.find(':'))).c_str(),
                  p.value("rounds", json()).dump().c_str(), p.value("steps", json()).dump().c_str(),
                  fmt(p.value("final_train_loss", json()), "%.4f").c_str(),
                  fmt(p.value("final_val_loss", json()), "%.4f").c_str(),
                  fmt(p.value("bytes_sent", json()), "%.2f", 1e-6).c_str(),
                  fmt(p.value("bytes_received", json()), "%.2f", 1e-6).c_str(),
                  fmt(p.value("wait_s", json()), "%.1f").c_str());
    t += row;
  }
  for (const auto& [status, peers] : reasons) t += peers + ": " + status + "\n";
  return t;
}

}  // namespace murmur::launch

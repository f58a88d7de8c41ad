#include "netem/report.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>

namespace murmur::netem {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double number(const json& e, const char* key) {
  const auto it = e.find(key);
  return it != e.end() && it->is_number() ? it->get<double>() : kNaN;
}

// CSV cells: numbers as %.10g, NaN as empty (a missing value).
std::string cell(double v) {
  if (std::isnan(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::ofstream open_out(const fs::path& p) {
  std::ofstream f(p);
  if (!f) throw std::runtime_error("cannot write " + p.string());
  return f;
}

std::string link_name(const Scenario& s, const Route& r) {
  return s.peers[r.dialer].name + "->" + s.peers[r.listener].name;
}

// gnuplot single-quoted strings double an embedded quote.
std::string gp_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// Bytes carried from site to site at sample k: route r's up bytes go dialer site -> listener site, its
// down bytes the other way.
std::map<std::pair<size_t, size_t>, double> site_bytes(const std::vector<Route>& routes,
                                                       const LinkSample& k) {
  std::map<std::pair<size_t, size_t>, double> out;
  for (size_t i = 0; i < routes.size() && i < k.links.size(); ++i) {
    out[{routes[i].dialer_site, routes[i].listener_site}] += double(k.links[i].up.bytes);
    out[{routes[i].listener_site, routes[i].dialer_site}] += double(k.links[i].down.bytes);
  }
  return out;
}

std::string site_flow_name(const Scenario& s, std::pair<size_t, size_t> f) {
  return s.sites[f.first].name + "->" + s.sites[f.second].name;
}

}  // namespace

std::vector<RoundRow> read_rounds(const std::vector<PeerRun>& peers, double run_start_unix) {
  std::vector<RoundRow> rows;
  for (size_t p = 0; p < peers.size(); ++p) {
    std::ifstream f(peers[p].dir / "log.jsonl");
    std::string line;
    while (std::getline(f, line)) {
      const json e = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!e.is_object() || e.value("event", "") != "round") continue;
      RoundRow r;
      r.peer = p;
      r.round = number(e, "round");
      r.step = number(e, "step");
      r.loss = number(e, "loss");
      r.val_loss = number(e, "val_loss");
      r.bytes_sent = number(e, "bytes_sent");
      r.bytes_received = number(e, "bytes_received");
      r.wait_s = number(e, "wait_s");
      r.consensus_distance = number(e, "consensus_distance");
      r.time_s = number(e, "time") - run_start_unix;
      rows.push_back(r);
    }
  }
  return rows;
}

void write_rounds_csv(const std::vector<PeerRun>& peers, const std::vector<RoundRow>& rows,
                      const fs::path& csv) {
  std::ofstream f = open_out(csv);
  f << "peer,round,step,loss,val_loss,bytes_sent,bytes_received,wait_s,consensus_distance,time_s\n";
  for (const RoundRow& r : rows) {
    f << peers.at(r.peer).name << ',' << cell(r.round) << ',' << cell(r.step) << ',' << cell(r.loss) << ','
      << cell(r.val_loss) << ',' << cell(r.bytes_sent) << ',' << cell(r.bytes_received) << ','
      << cell(r.wait_s) << ',' << cell(r.consensus_distance) << ',' << cell(r.time_s) << '\n';
  }
}

void write_links_csv(const Scenario& s, const std::vector<Route>& routes,
                     const std::vector<LinkSample>& samples, const fs::path& csv) {
  std::ofstream f = open_out(csv);
  f << "time_s,link,dialer_site,listener_site,bytes_up,bytes_down,rate_up_bps,rate_down_bps,connections,"
       "partitioned\n";
  for (const LinkSample& k : samples) {
    for (size_t i = 0; i < routes.size() && i < k.links.size(); ++i) {
      const LinkStats& l = k.links[i];
      f << cell(k.time_s) << ',' << link_name(s, routes[i]) << ',' << s.sites[routes[i].dialer_site].name
        << ',' << s.sites[routes[i].listener_site].name << ',' << l.up.bytes << ',' << l.down.bytes << ','
        << cell(l.up.rate_bps) << ',' << cell(l.down.rate_bps) << ',' << l.connections << ','
        << (l.partitioned ? 1 : 0) << '\n';
    }
  }
}

json traffic_totals(const Scenario& s, const std::vector<Route>& routes, const LinkSample& last) {
  json links = json::array(), sites = json::array();
  for (size_t i = 0; i < routes.size() && i < last.links.size(); ++i) {
    links.push_back({{"link", link_name(s, routes[i])},
                     {"bytes_up", last.links[i].up.bytes},
                     {"bytes_down", last.links[i].down.bytes}});
  }
  for (const auto& [flow, bytes] : site_bytes(routes, last)) {
    sites.push_back(
        {{"from", s.sites[flow.first].name}, {"to", s.sites[flow.second].name}, {"bytes", bytes}});
  }
  return {{"links", links}, {"sites", sites}};
}

std::string traffic_table(const json& totals) {
  std::string t;
  for (const json& f : totals.value("sites", json::array())) {
    if (f.value("bytes", 0.0) <= 0) continue;
    char row[160];
    std::snprintf(row, sizeof row, "  %-12s -> %-12s %10.2f MB\n", f.value("from", "").c_str(),
                  f.value("to", "").c_str(), f.value("bytes", 0.0) / 1e6);
    t += row;
  }
  return t.empty() ? "no traffic went through the relay\n" : "traffic between sites:\n" + t;
}

std::vector<fs::path> plot_report(const fs::path& dir, const Scenario& s, const std::vector<PeerRun>& peers,
                                  const std::vector<RoundRow>& rows, const std::vector<Route>& routes,
                                  const std::vector<LinkSample>& samples) {
  std::ostringstream gp;
  std::vector<fs::path> pngs;
  const auto terminal = [&](const std::string& file, const std::string& xlabel, const std::string& ylabel) {
    pngs.push_back(dir / file);
    gp << "set terminal pngcairo size 1000,550\nset output " << gp_quote(pngs.back().string())
       << "\nset title " << gp_quote(s.name) << "\nset xlabel " << gp_quote(xlabel) << "\nset ylabel "
       << gp_quote(ylabel) << "\nset grid\nset key outside right\n";
  };
  // One data block per peer that logged a round: columns time_s, MB sent, train loss.
  std::vector<size_t> logged;
  for (size_t p = 0; p < peers.size(); ++p) {
    std::ostringstream block;
    for (const RoundRow& r : rows) {
      if (r.peer == p && !std::isnan(r.loss))
        block << cell(r.time_s) << ' ' << cell(r.bytes_sent / 1e6) << ' ' << cell(r.loss) << '\n';
    }
    if (block.str().empty()) continue;
    gp << "$peer" << logged.size() << " << EOD\n" << block.str() << "EOD\n";
    logged.push_back(p);
  }
  const auto plot_peers = [&](int x_column) {
    gp << "plot ";
    for (size_t i = 0; i < logged.size(); ++i) {
      gp << (i ? ", \\\n     " : "") << "$peer" << i << " using " << x_column
         << ":3 with linespoints pt 7 ps 0.5 title " << gp_quote(peers[logged[i]].name);
    }
    gp << "\n";
  };
  if (!logged.empty()) {
    terminal("loss_vs_time.png", "wall time since start (s)", "train loss (nats/token)");
    plot_peers(1);
    terminal("loss_vs_bytes.png", "MB sent by the peer", "train loss (nats/token)");
    plot_peers(2);
  }
  // Utilisation between sites: Mbit/s over each sampling interval, one line per site flow that moved bytes.
  std::map<std::pair<size_t, size_t>, std::ostringstream> flows;
  for (size_t k = 1; k < samples.size(); ++k) {
    const double dt = samples[k].time_s - samples[k - 1].time_s;
    if (dt <= 0) continue;
    const auto before = site_bytes(routes, samples[k - 1]);
    for (const auto& [flow, bytes] : site_bytes(routes, samples[k])) {
      flows[flow] << cell(samples[k].time_s) << ' ' << cell((bytes - before.at(flow)) * 8 / dt / 1e6) << '\n';
    }
  }
  const auto last =
      samples.empty() ? std::map<std::pair<size_t, size_t>, double>{} : site_bytes(routes, samples.back());
  std::vector<std::pair<size_t, size_t>> moved;
  for (auto& [flow, block] : flows) {
    if (last.at(flow) <= 0) continue;
    gp << "$flow" << moved.size() << " << EOD\n" << block.str() << "EOD\n";
    moved.push_back(flow);
  }
  if (!moved.empty()) {
    terminal("link_utilisation.png", "wall time since start (s)", "traffic between sites (Mbit/s)");
    gp << "plot ";
    for (size_t i = 0; i < moved.size(); ++i) {
      gp << (i ? ", \\\n     " : "") << "$flow" << i << " using 1:2 with lines title "
         << gp_quote(site_flow_name(s, moved[i]));
    }
    gp << "\n";
  }
  if (pngs.empty()) return pngs;
  run_gnuplot(dir / "plots.gp", gp.str());
  return pngs;
}

void run_gnuplot(const fs::path& script, const std::string& text) {
  open_out(script) << text;
  // gnuplot reads the script from stdin so no path goes through a shell.
  std::FILE* p = ::popen("gnuplot", "w");
  if (!p) throw std::runtime_error("cannot run gnuplot (install gnuplot-nox)");
  const size_t written = std::fwrite(text.data(), 1, text.size(), p);
  const int status = ::pclose(p);
  if (written != text.size() || status != 0)
    throw std::runtime_error("gnuplot failed on " + script.string() + " (is gnuplot-nox installed?)");
}

}  // namespace murmur::netem

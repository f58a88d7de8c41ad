// murmur netem simulate SCENARIO.toml --out DIR: the scenario's swarm in virtual time (netem/simulator.h),
// the gossip settings taken from its [training] table, the report written as CSV, JSON and PNG.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "compress/codec_spec.h"
#include "model/atomic_file.h"
#include "netem/report.h"
#include "netem/simulator.h"
#include "node/cli/commands.h"
#include "node/peer/sim_model.h"

namespace murmur::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct SimArgs {
  std::string scenario, out, duration;
  int64_t rounds = 0;  // 0: [training] steps / inner-steps
  double step_s = 0;   // 0: from [training] batch, context and base_tokens_per_s
  double sample_s = 0;
  double progress_s = 2;
  uint64_t seed = 1;
  std::string objective_kind = "quadratic";
  bool per_round = false;
  netem::QuadraticObjective objective;
};

// The [training] keys the simulator reads; the others (model, data, learning rate...) belong to the
// language model it replaces by the analytical objective.
double number(const std::map<std::string, std::string>& t, const std::string& key, double fallback,
              const std::string& source) {
  auto it = t.find(key);
  if (it == t.end()) return fallback;
  try {
    size_t used = 0;
    const double v = std::stod(it->second, &used);
    if (used == it->second.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(source + ": [training] " + key + " = \"" + it->second + "\": not a number");
}

netem::SimConfig sim_config(const netem::Scenario& s, const SimArgs& a, const std::string& source) {
  const std::map<std::string, std::string> t(s.training.begin(), s.training.end());
  if (auto it = t.find("algo"); it != t.end() && it->second != "gossip")
    throw std::invalid_argument(
        source + ": [training] algo = \"" + it->second +
        "\": the simulator runs gossip only (`murmur netem run` runs every algorithm)");
  netem::SimConfig c;
  c.objective = a.objective;
  if (a.objective_kind == "model") {
    const peer::PeerArgs peer = peer::peer_args_from_training(s.training, source);
    c.make_objective = [peer](size_t peers) { return peer::make_model_objective(peer, peers); };
  }
  c.seed = a.seed;
  // The round's settings and schedule as a real peer takes them from the same keys.
  const peer::PeerArgs flags = peer::parse_training_table(s.training, source);
  c.round = peer::round_config(flags);
  c.rounds =
      a.rounds > 0 ? a.rounds : std::max<int64_t>(1, int64_t(c.round.schedule.rounds_for(flags.train.steps)));
  compress::parse_codec_spec(c.round.consensus.codec);  // names a bad codec before anything runs
  c.membership.target_degree = int(number(t, "degree", 3, source));
  c.membership.max_degree = int(number(t, "max-degree", 6, source));
  c.membership.link_lifetime = gossip::Millis(number(t, "link-lifetime-s", 30, source) * 1000);
  // A step's compute time: the runner throttles a peer of factor 1.0 to base_tokens_per_s.
  const double base = number(t, "base_tokens_per_s", 0, source);
  const double tokens = number(t, "batch", 8, source) * number(t, "context", 256, source);
  c.step_s = a.step_s > 0 ? a.step_s : base > 0 ? tokens / base : 0.1;
  c.sample_s = a.sample_s;
  c.record_rounds = a.per_round;
  if (!a.duration.empty()) {
    try {
      c.duration_s =
          std::chrono::duration<double>(netem::parse_duration(a.duration, std::chrono::hours(24 * 3650)))
              .count();
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--duration: ") + e.what());
    }
  }
  try {
    netem::validate(c);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
  return c;
}

void write_samples_csv(const std::vector<netem::SimSample>& samples, size_t peers, const fs::path& p) {
  std::ostringstream f;
  f << "time_s,peers,mean_round,loss_of_mean,mean_loss,consensus,link_distance,train_bytes_per_peer,"
       "membership_bytes_per_peer\n";
  for (const netem::SimSample& s : samples)
    f << s.time_s << ',' << s.peers << ',' << s.mean_round << ',' << s.loss_of_mean << ',' << s.mean_loss
      << ',' << s.consensus << ',' << s.link_distance << ',' << double(s.train_bytes) / double(peers) << ','
      << double(s.membership_bytes) / double(peers) << '\n';
  write_text_atomic(p, f.str());
}

void write_rounds_csv(const std::vector<netem::SimRound>& rounds, const netem::Scenario& s,
                      const fs::path& p) {
  std::ostringstream f;
  f << "peer,round,time_s,loss,link_distance\n";
  for (const netem::SimRound& r : rounds)
    f << s.peers[r.peer].name << ',' << r.round << ',' << r.time_s << ',' << r.loss << ',' << r.link_distance
      << '\n';
  write_text_atomic(p, f.str());
}

void write_peers_csv(const std::vector<netem::SimPeerResult>& peers, const fs::path& p) {
  std::ostringstream f;
  f << "peer,rounds,loss,bytes_sent,bytes_received,wait_s,crashed\n";
  for (const netem::SimPeerResult& r : peers)
    f << r.name << ',' << r.rounds << ',' << r.loss << ',' << r.bytes_sent << ',' << r.bytes_received << ','
      << r.wait_s << ',' << (r.crashed ? 1 : 0) << '\n';
  write_text_atomic(p, f.str());
}

std::vector<fs::path> plot(const fs::path& dir, const std::string& title, const std::string& loss_name) {
  const std::string csv = (dir / "samples.csv").string();
  std::ostringstream gp;
  gp << "set datafile separator ','\nset key autotitle columnhead\nset grid\nset logscale y\n"
     << "set title \"" << title << "\" noenhanced\n";
  gp << "set terminal pngcairo size 900,540\nset output '" << (dir / "consensus.png").string() << "'\n"
     << "set xlabel 'virtual time (s)'\nset ylabel 'relative distance'\n"
     << "plot '" << csv << "' using 1:6 with lines title 'mean |x_i - mean x| / |mean x|', '' using 1:7 with "
     << "lines title 'mean link distance (what peers log)'\n";
  gp << "set output '" << (dir / "loss_vs_bytes.png").string() << "'\n"
     << "set xlabel 'training bytes sent per peer (MB)'\nset ylabel '" << loss_name << "'\n"
     << "plot '" << csv
     << "' using ($8/1e6):4 with lines title 'loss of the mean model', '' using ($8/1e6):5 "
     << "with lines title 'mean loss of the peers'\n";
  netem::run_gnuplot(dir / "plots.gp", gp.str());
  return {dir / "consensus.png", dir / "loss_vs_bytes.png"};
}

void run_simulation(const SimArgs& a) {
  const netem::Scenario s = netem::load_scenario(a.scenario);
  const std::string source = fs::path(a.scenario).filename().string();
  const netem::SimConfig c = sim_config(s, a, source);
  const fs::path out = a.out;
  fs::create_directories(out);
  std::printf("netem simulate %s: %zu peers, %lld rounds, %s (%.3g virtual s per step), codec %s, %s\n",
              s.name.c_str(), s.peers.size(), static_cast<long long>(c.rounds),
              c.round.schedule.describe().c_str(), c.step_s, c.round.consensus.codec.c_str(),
              c.make_objective ? "the [training] model"
                               : ("quadratic, dim " + std::to_string(c.objective.dim)).c_str());
  std::fflush(stdout);
  const auto t0 = std::chrono::steady_clock::now();
  auto wall = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  double next_progress = a.progress_s;
  const netem::SimResult r = netem::simulate(s, c, [&](const netem::SimSample& x) {
    if (wall() < next_progress) return;
    next_progress = wall() + a.progress_s;
    std::printf("[%6.1fs wall] t=%.0fs  peers=%zu  round=%.1f  loss=%.4g  consensus=%.3g\n", wall(), x.time_s,
                x.peers, x.mean_round, x.loss_of_mean, x.consensus);
    std::fflush(stdout);
  });
  const double wall_s = wall();
  const netem::SimSample& last = r.samples.back();
  write_samples_csv(r.samples, s.peers.size(), out / "samples.csv");
  write_peers_csv(r.peers, out / "peers.csv");
  if (a.per_round) write_rounds_csv(r.rounds, s, out / "rounds.csv");
  double wait = 0;
  for (const auto& p : r.peers) wait += p.wait_s;
  const json summary = {
      {"scenario", s.name},
      {"peers", s.peers.size()},
      {"rounds", c.rounds},
      {"inner_steps", c.round.schedule.inner_steps},
      {"warmup_steps", c.round.schedule.warmup_steps},
      {"warmup_inner_steps", c.round.schedule.warmup_inner_steps},
      {"step_s", c.step_s},
      {"codec", c.round.consensus.codec},
      {"objective", a.objective_kind},
      {"loss", r.loss_name},
      {"dim", c.make_objective ? json(nullptr) : json(c.objective.dim)},
      {"seed", c.seed},
      {"virtual_s", r.virtual_s},
      {"wall_s", wall_s},
      {"events", r.events},
      {"messages", r.messages},
      {"dropped", r.dropped},
      {"suspicions", r.suspicions},
      {"deaths", r.deaths},
      {"false_deaths", r.false_deaths},
      {"final",
       {{"mean_round", last.mean_round},
        {"loss_of_mean", last.loss_of_mean},
        {"mean_loss", last.mean_loss},
        {"consensus", last.consensus},
        {"link_distance", last.link_distance},
        {"train_bytes_per_peer", double(last.train_bytes) / double(s.peers.size())},
        {"membership_bytes_per_peer", double(last.membership_bytes) / double(s.peers.size())},
        {"mean_wait_s", wait / double(s.peers.size())}}}};
  write_text_atomic(out / "summary.json", summary.dump(2) + "\n");
  std::vector<fs::path> pngs;
  try {
    pngs = plot(out, s.name + ": " + std::to_string(s.peers.size()) + " simulated peers", r.loss_name);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "netem simulate: no plots: %s\n", e.what());
  }
  std::printf(
      "\nnetem simulate %s: report in %s\n"
      "  %zu peers, %.0f virtual s in %.1f wall s (%llu events, %llu messages, %llu dropped)\n"
      "  mean round %.1f   loss of the mean %.4g   mean loss %.4g   consensus %.3g\n"
      "  per peer: %.2f MB of deltas, %.2f MB of membership, %.1f s waiting\n"
      "  membership: %llu suspicions, %llu deaths (%llu of running peers)\n",
      s.name.c_str(), out.c_str(), s.peers.size(), r.virtual_s, wall_s,
      static_cast<unsigned long long>(r.events), static_cast<unsigned long long>(r.messages),
      static_cast<unsigned long long>(r.dropped), last.mean_round, last.loss_of_mean, last.mean_loss,
      last.consensus, double(last.train_bytes) / 1e6 / double(s.peers.size()),
      double(last.membership_bytes) / 1e6 / double(s.peers.size()), wait / double(s.peers.size()),
      static_cast<unsigned long long>(r.suspicions), static_cast<unsigned long long>(r.deaths),
      static_cast<unsigned long long>(r.false_deaths));
  for (const fs::path& p : pngs) std::printf("plot: %s\n", p.c_str());
}

}  // namespace

void add_netem_simulate(CLI::App& netem) {
  auto a = std::make_shared<SimArgs>();
  CLI::App* sub =
      netem.add_subcommand("simulate", "Simulate a scenario's swarm in virtual time, up to 10,000 peers");
  sub->footer(
      "Every peer runs the real membership and CHOCO gossip code with the real codecs; the network is\n"
      "modelled from the scenario's links (bandwidth, delay, jitter, sites' shared uplinks and downlinks,\n"
      "partitions, set_link, set_site) and compute\n"
      "from each peer's factor. By default, instead of the language model the peers minimise an analytical\n"
      "objective: peer i has f_i(x) = 1/2 sum_k a_k (x_k - b_ik)^2 with a_k in [0.1, 1] and b_i = b + h "
      "z_i,\n"
      "trained with noisy SGD; losses are (f(x) - f*) / (f(x0) - f*). With --objective model every peer\n"
      "trains the [training] model on its data stream as `murmur node` does (losses in nats/token; the\n"
      "mean loss is the peers' latest round train loss, the loss of the mean a validation loss). From\n"
      "[training]: inner-steps,\n"
      "steps (rounds = steps / inner-steps), codec, gamma, outer-lr, outer-momentum, degree, max-degree,\n"
      "wait-max-s, aggregation, clip-radius, clip-factor, trim; batch * context / base_tokens_per_s sets a "
      "step's virtual time.\n"
      "Writes DIR/summary.json, samples.csv (the swarm over time), peers.csv, consensus.png and\n"
      "loss_vs_bytes.png.");
  sub->add_option("scenario", a->scenario, "Scenario file (netem/scenarios/*.toml, docs/netem.md)")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--out", a->out, "Directory for the report")->required();
  sub->add_option("--rounds", a->rounds, "Rounds per peer (default: [training] steps / inner-steps)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  sub->add_option("--step-s", a->step_s, "Virtual seconds of one inner step at compute factor 1.0")
      ->check(CLI::Range(0.0, 3600.0));
  sub->add_option("--duration", a->duration,
                  "Stop at this virtual time, e.g. 2h (default: when every peer is done)");
  sub->add_option("--objective", a->objective_kind,
                  "quadratic: the analytical objective (fast, any scale); model: every peer trains the "
                  "[training] model on its data, as `murmur node` does (slow: a few peers)")
      ->capture_default_str()
      ->check(CLI::IsMember({"quadratic", "model"}));
  sub->add_option("--dim", a->objective.dim, "Parameters of the objective")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 24));
  sub->add_option("--heterogeneity", a->objective.heterogeneity,
                  "Spread h of the peers' optima (0 = same data)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1000.0));
  sub->add_option("--noise", a->objective.noise, "Gradient noise sigma per coordinate and step")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1000.0));
  sub->add_option("--lr", a->objective.lr, "Inner SGD step size on the objective, in (0, 2)")
      ->capture_default_str()
      ->check(CLI::Range(1e-9, 1.999));
  sub->add_flag("--per-round", a->per_round,
                "Also write rounds.csv: every peer's loss and link distance per round, as peers log them");
  sub->add_option("--sample-s", a->sample_s, "Virtual seconds between samples (default: one round)")
      ->check(CLI::Range(0.0, 1e9));
  sub->add_option("--progress-s", a->progress_s, "Wall seconds between progress lines")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  sub->add_option("--seed", a->seed, "Seed of the objective, the network and the peers")
      ->capture_default_str();
  sub->callback([a] { run_simulation(*a); });
}

}  // namespace murmur::cli

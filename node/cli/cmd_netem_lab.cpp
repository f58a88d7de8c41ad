// murmur netem lab SCENARIO.toml --out DIR: the algorithm lab (netem/lab.h). The scenario's [training]
// model trained by each algorithm at equal tokens per peer, at several run lengths, on an ideal network;
// a table per run length and the curves behind it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "compress/codec_spec.h"
#include "model/atomic_file.h"
#include "netem/lab.h"
#include "netem/scenario.h"
#include "node/cli/commands.h"
#include "node/peer/sim_model.h"

namespace murmur::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct LabArgs {
  std::string scenario, out;
  std::vector<std::string> algos = {"allreduce", "diloco", "gossip", "local"};
  std::vector<int64_t> lengths = {1, 4, 16};
  int64_t evals = 8;
  int64_t relink_every = 0;
  size_t peers = 0;  // 0: the scenario's
  uint64_t seed = 1;
  size_t byzantine = 0;  // gossip: the last N peers attack
  std::string attack = "sign-flip";
  double attack_scale = 0;
};

// "gossip" or "gossip/CODEC": the algorithm and, for gossip, the codec (else [training] codec).
struct Variant {
  std::string name, algo, codec;
};
Variant parse_variant(const std::string& text, const std::string& default_codec) {
  const size_t slash = text.find('/');
  Variant v{text, text.substr(0, slash), default_codec};
  if (slash != std::string::npos) {
    if (v.algo != "gossip") throw std::invalid_argument("--algo " + text + ": only gossip takes a codec");
    v.codec = text.substr(slash + 1);
    compress::parse_codec_spec(v.codec);  // names a bad codec before anything runs
  }
  if (v.algo != "allreduce" && v.algo != "diloco" && v.algo != "gossip" && v.algo != "local")
    throw std::invalid_argument("--algo " + text + ": allreduce, diloco, gossip[/CODEC] or local");
  return v;
}

struct Run {
  Variant variant;
  int64_t length = 1;
  double tokens_per_peer = 0, wall_s = 0;
  std::vector<netem::LabPoint> points;
  gossip::RoundSchedule schedule;  // this length's (the warm-up scales with it)
};

json to_json(const Run& r, double tokens_per_step) {
  json pts = json::array();
  for (const auto& p : r.points)
    pts.push_back(
        {{"round", p.round},
         {"tokens_per_peer",
          std::min(r.tokens_per_peer, double(r.schedule.first_step(uint64_t(p.round))) * tokens_per_step)},
         {"loss", p.loss},
         {"loss_of_mean", p.loss_of_mean},
         {"consensus", p.consensus},
         {"bytes_per_peer", p.bytes_per_peer},
         {"links_cut", p.links_cut}});
  const netem::LabPoint& last = r.points.back();
  return {{"name", r.variant.name},
          {"algo", r.variant.algo},
          {"codec", r.variant.algo == "gossip" ? r.variant.codec : ""},
          {"length", r.length},
          {"tokens_per_peer", r.tokens_per_peer},
          {"val_loss", last.loss},
          {"val_loss_of_mean", last.loss_of_mean},
          {"consensus", last.consensus},
          {"bytes_per_peer", last.bytes_per_peer},
          {"wall_s", r.wall_s},
          {"points", pts}};
}

// One table per run length: each algorithm against allreduce (the upper baseline) and local (the lower).
std::string tables(const std::vector<Run>& runs, size_t peers) {
  std::ostringstream md;
  std::vector<int64_t> lengths;
  for (const Run& r : runs)
    if (std::find(lengths.begin(), lengths.end(), r.length) == lengths.end()) lengths.push_back(r.length);
  for (int64_t m : lengths) {
    const Run* ar = nullptr;
    const Run* local = nullptr;
    for (const Run& r : runs) {
      if (r.length != m) continue;
      if (r.variant.algo == "allreduce") ar = &r;
      if (r.variant.algo == "local") local = &r;
    }
    const Run& any = *std::find_if(runs.begin(), runs.end(), [&](const Run& r) { return r.length == m; });
    char head[256];
    std::snprintf(head, sizeof head, "\n### x%lld: %.0f tokens per peer, %zu peers\n\n",
                  static_cast<long long>(m), any.tokens_per_peer, peers);
    md << head
       << "| algo | val loss (mean of peers) | of the mean model | gap to allreduce | gain kept | MB "
          "sent/peer | "
          "bytes vs allreduce | consensus |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for (const Run& r : runs) {
      if (r.length != m) continue;
      const netem::LabPoint& p = r.points.back();
      char row[512];
      std::string gap = "-", kept = "-", ratio = "-";
      auto printf_str = [](const char* f, double x) {
        char buf[64];
        std::snprintf(buf, sizeof buf, f, x);
        return std::string(buf);
      };
      if (ar) {
        const double base = ar->points.back().loss;
        gap = printf_str("%+.2f %%", 100 * (p.loss - base) / base);
        if (p.bytes_per_peer > 0)
          ratio = printf_str("1/%.0f", ar->points.back().bytes_per_peer / p.bytes_per_peer);
        if (local && local->points.back().loss > base) {
          const double l = local->points.back().loss;
          kept = printf_str("%.0f %%", 100 * (l - p.loss) / (l - base));
        }
      }
      std::snprintf(row, sizeof row, "| %s | %.4f | %.4f | %s | %s | %.2f | %s | %.2g |\n",
                    r.variant.name.c_str(), p.loss, p.loss_of_mean, gap.c_str(), kept.c_str(),
                    p.bytes_per_peer / 1e6, ratio.c_str(), p.consensus);
      md << row;
    }
  }
  return md.str();
}

void run_lab(const LabArgs& a) {
  const netem::Scenario s = netem::load_scenario(a.scenario);
  const std::string source = fs::path(a.scenario).filename().string();
  const peer::PeerArgs base = peer::peer_args_from_training(s.training, source);
  const size_t peers = a.peers > 0 ? a.peers : s.peers.size();
  std::vector<Variant> variants;
  for (const std::string& v : a.algos) variants.push_back(parse_variant(v, base.codec));
  const gossip::RoundConfig round = peer::round_config(base);
  const ModelConfig cfg = base.model.config();
  const double tokens_per_step = double(base.batch.batch) * base.batch.context_for(cfg);
  const fs::path out = a.out;
  fs::create_directories(out);
  std::printf(
      "netem lab %s: %zu peers, %s (%.2fM params), %s, %lld steps in %llu rounds at x1 (%.0f tokens "
      "per peer)\n",
      s.name.c_str(), peers, cfg.describe().c_str(), cfg.num_params() / 1e6,
      round.schedule.describe().c_str(), static_cast<long long>(base.train.steps),
      static_cast<unsigned long long>(round.schedule.rounds_for(base.train.steps)),
      double(base.train.steps) * tokens_per_step);
  std::fflush(stdout);

  std::vector<Run> runs;
  for (int64_t m : a.lengths) {
    for (const Variant& v : variants) {
      peer::PeerArgs args = base;
      args.train.steps = base.train.steps * m;  // the LR schedule spans the longer run
      netem::LabConfig c;
      c.algo = v.algo;
      c.peers = peers;
      c.round = peer::round_config(args);  // the warm-up is the same share of every run length
      c.rounds = int64_t(c.round.schedule.rounds_for(args.train.steps));
      c.round.consensus.codec = v.codec;
      c.byzantine = a.byzantine;
      if (a.byzantine > 0) c.attack = {gossip::parse_attack(a.attack), a.attack_scale};
      c.degree = base.degree;
      c.relink_every = a.relink_every;
      c.eval_every = std::max<int64_t>(1, c.rounds / std::max<int64_t>(1, a.evals));
      c.seed = a.seed;
      Run run{v, m, double(args.train.steps) * tokens_per_step, 0, {}, c.round.schedule};
      const auto t0 = std::chrono::steady_clock::now();
      auto wall = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      };
      const auto objective = peer::make_model_objective(args, peers);
      run.points = netem::run_lab(*objective, c, [&](const netem::LabPoint& p) {
        std::printf("[%7.1fs] %-24s x%-3lld round %5lld/%lld  val %.4f  mean model %.4f  %.2f MB/peer\n",
                    wall(), v.name.c_str(), static_cast<long long>(m), static_cast<long long>(p.round),
                    static_cast<long long>(c.rounds), p.loss, p.loss_of_mean, p.bytes_per_peer / 1e6);
        std::fflush(stdout);
      });
      run.wall_s = wall();
      runs.push_back(std::move(run));
      // Written after every run: an interrupted lab keeps what it measured.
      json all = json::array();
      for (const Run& r : runs) all.push_back(to_json(r, tokens_per_step));
      write_text_atomic(out / "results.json", json{{"scenario", s.name},
                                                   {"peers", peers},
                                                   {"model", cfg.describe()},
                                                   {"params", cfg.num_params()},
                                                   {"inner_steps", round.schedule.inner_steps},
                                                   {"sync_warmup", base.sync_warmup},
                                                   {"warmup_inner_steps", round.schedule.warmup_inner_steps},
                                                   {"byzantine", a.byzantine},
                                                   {"attack", a.byzantine > 0 ? a.attack : ""},
                                                   {"runs", all}}
                                                      .dump(2) +
                                                  "\n");
      write_text_atomic(out / "results.md", tables(runs, peers));
    }
  }
  std::printf("\n%s\nreport: %s, %s\n", tables(runs, peers).c_str(), (out / "results.md").c_str(),
              (out / "results.json").c_str());
}

}  // namespace

void add_netem_lab(CLI::App& netem) {
  auto a = std::make_shared<LabArgs>();
  CLI::App* sub = netem.add_subcommand(
      "lab", "Compare allreduce, diloco, gossip and local at equal tokens per peer over run lengths");
  sub->footer(
      "Every algorithm trains the scenario's [training] model (data, preset or size overrides, batch,\n"
      "context, lr, inner-steps H, outer-lr/momentum, codec, gamma, degree) with the scenario's number of\n"
      "peers on an ideal network (every message arrives, nobody waits): what differs is the algorithm.\n"
      "gossip runs the peers' round protocol on random neighbour links; allreduce and diloco count the\n"
      "bytes of a ring all-reduce. A run of length xM has M times the steps of [training] steps (its\n"
      "LR schedule spans the whole run; the sync warm-up is the same share of it). Losses are\n"
      "validation losses on the same windows (eval-windows): the mean over the peers of each one's\n"
      "model, and that of their mean model.\n"
      "Writes DIR/results.json (every evaluation) and DIR/results.md (a table per length);\n"
      "bench/lab_report.py draws the plots.");
  sub->add_option("scenario", a->scenario, "Scenario file whose [training] and peers the lab uses")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--out", a->out, "Directory for the report")->required();
  sub->add_option("--algo", a->algos, "Algorithms to run: allreduce, diloco, gossip, gossip/CODEC, local")
      ->capture_default_str();
  sub->add_option("--lengths", a->lengths, "Run lengths as multiples of [training] steps")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_option("--evals", a->evals, "Evaluations per run")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  sub->add_option("--relink-every", a->relink_every,
                  "gossip: a new random neighbour graph every N rounds (0 = one graph for the run)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--peers", a->peers, "Number of peers (default: the scenario's)")
      ->check(CLI::Range(1, 4096));
  sub->add_option("--seed", a->seed, "Seed of the neighbour graphs")->capture_default_str();
  sub->add_option("--byzantine", a->byzantine,
                  "gossip: the last N peers attack their neighbours (losses are the honest peers')")
      ->check(CLI::Range(0, 4095));
  sub->add_option("--attack", a->attack,
                  "With --byzantine: sign-flip, random, stale, nan, snapshot, alie or ipm "
                  "(docs/robustness.md)")
      ->capture_default_str();
  sub->add_option("--attack-scale", a->attack_scale, "The attack's strength (0 = its default)")
      ->check(CLI::NonNegativeNumber);
  sub->callback([a] { run_lab(*a); });
}

}  // namespace murmur::cli

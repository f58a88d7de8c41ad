// The discrete-event swarm simulator (netem/simulator.h): the real membership and gossip code over
// modelled links, training the analytical objective.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "model/rng.h"
#include "netem/scenario.h"
#include "netem/sim_links.h"
#include "netem/simulator.h"
#include "test_util.h"

namespace {

using murmur::netem::SimConfig;
using murmur::netem::SimResult;
namespace g = murmur::gossip;

// Fixed wire sizes keep these tests independent of the msgpack codec (the command uses the real ones).
SimConfig config(const char* codec = "fp32", double heterogeneity = 1.0, double noise = 0.0) {
  SimConfig c;
  c.objective.dim = 128;
  c.objective.heterogeneity = heterogeneity;
  c.objective.noise = noise;
  c.rounds = 60;
  c.round.schedule.inner_steps = 5;
  c.step_s = 0.2;
  c.round.consensus.codec = codec;
  return c;
}

std::string lan(int peers, const std::string& events = "") {
  return "name = \"t\"\nduration = \"1h\"\n[[site]]\nname = \"a\"\npeers = " + std::to_string(peers) +
         "\nlink = { bandwidth = \"1gbit\", delay = \"1ms\" }\n" + events;
}

std::string two_sites(int per_site, const std::string& events) {
  return "name = \"t\"\nduration = \"1h\"\n"
         "[[site]]\nname = \"a\"\npeers = " +
         std::to_string(per_site) +
         "\nlink = { bandwidth = \"1gbit\", delay = \"1ms\" }\n"
         "[[site]]\nname = \"b\"\npeers = " +
         std::to_string(per_site) +
         "\nlink = { bandwidth = \"1gbit\", delay = \"1ms\" }\n"
         "[[link]]\nsites = [\"a\", \"b\"]\nbandwidth = \"50mbit\"\ndelay = \"40ms\"\njitter = \"5ms\"\n" +
         events;
}

SimResult run(const std::string& scenario, const SimConfig& c) {
  return murmur::netem::simulate(murmur::netem::parse_scenario(scenario), c);
}

// `murmur netem simulate SCENARIO --out OUT FLAGS`, and its summary.json.
murmur::test::CommandResult simulate_cli(const std::filesystem::path& scenario,
                                         const std::filesystem::path& out, const std::string& flags = "") {
  return murmur::test::run_command(murmur::test::murmur_cmd("netem simulate " + scenario.string() +
                                                            " --out " + out.string() + " " + flags));
}
nlohmann::json summary(const std::filesystem::path& out) {
  std::ifstream f(out / "summary.json");
  return nlohmann::json::parse(f);
}

TEST(Simulator, GossipFindsTheSwarmsOptimumDespiteHeterogeneousData) {
  // Each peer's own optimum is far from the swarm's (h = 1); symmetric mixing keeps the average on
  // the swarm's objective, so the mean model reaches its optimum.
  const SimResult r = run(lan(16), config("fp32", 1.0));
  ASSERT_FALSE(r.samples.empty());
  EXPECT_EQ(r.samples.back().peers, 16u);
  EXPECT_DOUBLE_EQ(r.samples.back().mean_round, 60.0);
  EXPECT_LT(r.samples.back().loss_of_mean, 1e-3);
  EXPECT_GT(r.samples.front().loss_of_mean, 0.05);
  for (const auto& p : r.peers) {
    EXPECT_EQ(p.rounds, 60u) << p.name;
    EXPECT_GT(p.bytes_sent, 0u);
    EXPECT_FALSE(p.crashed);
  }
  EXPECT_EQ(r.false_deaths, 0u);
  EXPECT_EQ(r.dropped, 0u);
}

TEST(Simulator, IdenticalDataReachesConsensus) {
  const SimResult r = run(lan(16), config("int8:block=64", 0.0, 0.05));
  EXPECT_LT(r.samples.back().consensus, 0.05);
  EXPECT_LT(r.samples.back().loss_of_mean, 0.01);
  EXPECT_LT(r.samples.back().mean_loss, 0.02);
}

TEST(Simulator, SameSeedSameRun) {
  const SimConfig c = config("int4:block=64", 1.0, 0.1);
  const SimResult a = run(two_sites(4, ""), c), b = run(two_sites(4, ""), c);
  ASSERT_EQ(a.samples.size(), b.samples.size());
  for (size_t k = 0; k < a.samples.size(); ++k) {
    EXPECT_EQ(a.samples[k].loss_of_mean, b.samples[k].loss_of_mean);
    EXPECT_EQ(a.samples[k].train_bytes, b.samples[k].train_bytes);
  }
  EXPECT_EQ(a.events, b.events);
  SimConfig other = c;
  other.seed = 2;
  EXPECT_NE(run(two_sites(4, ""), other).samples.back().loss_of_mean, a.samples.back().loss_of_mean);
}

TEST(Simulator, CompressedDeltasCostFewerBytes) {
  const SimResult fp32 = run(lan(8), config("fp32")), int8 = run(lan(8), config("int8:block=64"));
  const double ratio = double(int8.samples.back().train_bytes) / double(fp32.samples.back().train_bytes);
  // Snapshots on new links are fp32 in both runs; the deltas are a quarter the size and more.
  EXPECT_LT(ratio, 0.5);
  EXPECT_GT(ratio, 0.2);
  EXPECT_LT(int8.samples.back().loss_of_mean, 0.01);
}

TEST(Simulator, PartitionDropsTrafficAndTheSwarmHealsAfterwards) {
  SimConfig c = config("fp32", 0.0, 0.05);
  c.rounds = 100;  // 100 s: the sites are apart from 10 s to 40 s
  const SimResult r =
      run(two_sites(4,
                    "[[event]]\nat = \"10s\"\naction = \"partition\"\nsites = [\"a\", \"b\"]\n"
                    "[[event]]\nat = \"40s\"\naction = \"heal\"\nsites = [\"a\", \"b\"]\n"),
          c);
  EXPECT_GT(r.dropped, 0u);
  EXPECT_GT(r.deaths, 0u);                      // each side declares the other dead...
  EXPECT_LT(r.samples.back().consensus, 0.05);  // ...and after the heal they mix again
  EXPECT_LT(r.samples.back().loss_of_mean, 0.01);
}

TEST(Simulator, CrashedPeerIsDeclaredDeadAndTheRestFinish) {
  const SimResult r = run(lan(8, "[[event]]\nat = \"5s\"\naction = \"kill\"\npeer = \"a-3\"\n"), config());
  EXPECT_TRUE(r.peers[3].crashed);
  EXPECT_LT(r.peers[3].rounds, 60u);
  EXPECT_GE(r.deaths, 7u);  // everyone else's verdict
  EXPECT_EQ(r.false_deaths, 0u);
  EXPECT_EQ(r.samples.back().peers, 7u);
  for (size_t i = 0; i < r.peers.size(); ++i)
    if (i != 3) {
      EXPECT_EQ(r.peers[i].rounds, 60u);
    }
}

TEST(Simulator, LateJoinerAdoptsTheSwarmsState) {
  const SimResult r =
      run(lan(6, "[[event]]\nat = \"30s\"\naction = \"join\"\npeer = \"a-5\"\n"), config("fp32", 0.1, 0.0));
  // Rounds take 1 s: the joiner arrives at about round 30, takes a neighbour's state and round, and
  // finishes with the others instead of 30 rounds later.
  EXPECT_EQ(r.peers[5].rounds, 60u);
  EXPECT_LT(r.virtual_s, 70.0);
  double others = 0;
  for (size_t i = 0; i < 5; ++i) others += r.peers[i].loss / 5;
  EXPECT_LT(r.peers[5].loss, 5 * others);  // its outer momentum starts from zero: a little behind
  EXPECT_LT(r.peers[5].loss, 0.05);
}

// Two sites of two peers, 8 Mbit/s between each pair of them; site a's uplink has 8 Mbit/s and 10 ms.
// 1 MB takes 1 s at 8 Mbit/s.
constexpr const char* kSharedUplink = R"(
name = "t"
duration = "1h"
[[site]]
name = "a"
peers = 2
uplink = { bandwidth = "8mbit", delay = "10ms" }
[[site]]
name = "b"
peers = 2
[[link]]
sites = ["a", "b"]
bandwidth = "8mbit"
delay = "40ms"
[[event]]
at = "1min"
action = "set_site"
site = "a"
uplink = "16mbit"
)";

TEST(SimLinks, TransfersAcrossASharedUplinkQueue) {
  const murmur::netem::Scenario s = murmur::netem::parse_scenario(kSharedUplink);
  murmur::SplitMix64 rng(1);
  murmur::netem::SimLinks links(s, rng);
  constexpr size_t kMB = 1'000'000;
  // Alone: 1 s on the pair's link and the uplink at once, then 40 + 10 ms.
  EXPECT_DOUBLE_EQ(*links.send(0, 0, 2, kMB, true), 1.05);
  // a-0 -> b-0 and a-1 -> b-1 at once: each pair's own link carries its message in 1 s, but the uplink
  // carries both: the second is through at 2 s, twice the time of one.
  EXPECT_DOUBLE_EQ(*links.send(10, 0, 2, kMB, true), 11.05);
  EXPECT_DOUBLE_EQ(*links.send(10, 1, 3, kMB, true), 12.05);
  // Inside the site the uplink is not crossed; the reverse direction (b -> a) has no uplink of b.
  EXPECT_DOUBLE_EQ(*links.send(20, 0, 1, kMB, true), 20.0);
  EXPECT_DOUBLE_EQ(*links.send(20, 2, 0, kMB, true), 21.04);
  // Control messages do not queue: one uplink's serialisation, as the pair's, plus both delays.
  EXPECT_DOUBLE_EQ(*links.send(30, 0, 2, kMB, true), 31.05);
  EXPECT_DOUBLE_EQ(*links.send(30, 1, 3, 1000, false), 30.051);
  // set_site doubles the uplink: two transfers at once now end when each pair's link is done.
  links.apply(s.events.at(0));
  EXPECT_DOUBLE_EQ(*links.send(100, 0, 2, kMB, true), 101.05);
  EXPECT_DOUBLE_EQ(*links.send(100, 1, 3, kMB, true), 101.05);
}

TEST(Simulator, RejectsBadConfigs) {
  SimConfig c = config();
  c.objective.lr = 2.5;
  EXPECT_THROW(run(lan(2), c), std::invalid_argument);
  c = config();
  c.round.consensus.codec = "int9";
  EXPECT_THROW(run(lan(2), c), std::invalid_argument);
}

TEST(SimulatorCli, WritesTheReportAndNamesBadTrainingKeys) {
  murmur::test::TempDir dir;
  const auto scenario = dir.path() / "s.toml";
  std::ofstream(scenario) << lan(6)
                          << "[training]\ninner-steps = 5\nsteps = 100\ncodec = \"int8:block=64\"\n";
  const auto out = dir.path() / "out";
  const auto r = simulate_cli(scenario, out, "--dim 64 --step-s 0.1");
  ASSERT_EQ(r.rc, 0) << r.output;
  const nlohmann::json s = summary(out);
  EXPECT_EQ(s["peers"], 6);
  // The default sync warm-up: 13 steps in 7 rounds of H/2 = 2 (the last 1), then 87 in 18 rounds of 5.
  EXPECT_EQ(s["rounds"], 25);
  EXPECT_EQ(s["codec"], "int8:block=64");
  EXPECT_LT(s["final"]["loss_of_mean"].get<double>(), 0.05);
  EXPECT_GT(s["final"]["train_bytes_per_peer"].get<double>(), 0.0);
  EXPECT_TRUE(std::filesystem::exists(out / "samples.csv"));
  EXPECT_TRUE(std::filesystem::exists(out / "peers.csv"));

  std::ofstream(scenario) << lan(2) << "[training]\nalgo = \"allreduce\"\n";
  const auto bad = simulate_cli(scenario, out);
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.output.find("gossip only"), std::string::npos) << bad.output;
  std::ofstream(scenario) << lan(2) << "[training]\ngamma = \"lots\"\n";
  const auto nan = simulate_cli(scenario, out);
  EXPECT_NE(nan.rc, 0);
  EXPECT_NE(nan.output.find("gamma"), std::string::npos) << nan.output;
}

// --objective model: each simulated peer trains the [training] model with the Trainer `murmur node` uses.
TEST(SimulatorCli, ModelObjectiveTrainsTheRealModel) {
  murmur::test::TempDir dir;
  {
    std::ofstream a(dir.path() / "a.txt"), b(dir.path() / "b.txt");
    for (int i = 0; i < 300; ++i)
      (i < 220 ? a : b) << (i % 3 ? "the quick brown fox jumps over the lazy dog " : "pack my box ") << i % 7
                        << "\n";
  }
  const std::string data = (dir.path() / "data").string();
  const auto prep = murmur::test::run_command(
      murmur::test::murmur_cmd("data prepare --tokenizer byte --out " + data + " --input " +
                               (dir.path() / "a.txt").string() + " " + (dir.path() / "b.txt").string()));
  ASSERT_EQ(prep.rc, 0) << prep.output;
  const auto scenario = dir.path() / "s.toml";
  const std::string training = "[training]\npreset = \"tiny\"\ndata = \"" + data +
                               "\"\nbatch = 4\ncontext = 32\nlr = 0.003\ninner-steps = 5\nsteps = 40\n"
                               "eval-windows = 4\n";
  std::ofstream(scenario) << lan(3) << training;
  const auto out = dir.path() / "out";
  const auto r = simulate_cli(scenario, out, "--objective model");
  ASSERT_EQ(r.rc, 0) << r.output;
  const nlohmann::json s = summary(out);
  EXPECT_EQ(s["objective"], "model");
  // 5 steps of sync warm-up in rounds of 2, 2 and 1, then 35 in 7 rounds of 5.
  EXPECT_EQ(s["rounds"], 10);
  EXPECT_DOUBLE_EQ(s["final"]["mean_round"].get<double>(), 10.0);
  // Byte-level text starts at ln(256) = 5.5 nats/token; this corpus is learnt quickly.
  EXPECT_LT(s["final"]["mean_loss"].get<double>(), 4.0);
  EXPECT_LT(s["final"]["loss_of_mean"].get<double>(), 4.0);
  EXPECT_GT(s["final"]["link_distance"].get<double>(), 0.0);

  std::string huge = training;
  huge.replace(huge.find("tiny"), 4, "huge");
  std::ofstream(scenario) << lan(2) << huge;
  const auto bad = simulate_cli(scenario, out, "--objective model");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.output.find("huge"), std::string::npos) << bad.output;

  // The lab: the four algorithms on the same model and data, at equal tokens per peer.
  std::ofstream(scenario) << lan(3) << training;
  const auto lab_out = dir.path() / "lab";
  const auto lab = murmur::test::run_command(murmur::test::murmur_cmd(
      "netem lab " + scenario.string() + " --out " + lab_out.string() + " --lengths 1 --evals 2"));
  ASSERT_EQ(lab.rc, 0) << lab.output;
  const nlohmann::json res = nlohmann::json::parse(std::ifstream(lab_out / "results.json"));
  ASSERT_EQ(res["runs"].size(), 4u);
  std::map<std::string, nlohmann::json> by;
  for (const auto& run : res["runs"]) by[run["algo"]] = run;
  EXPECT_EQ(by["allreduce"]["tokens_per_peer"], 40 * 4 * 32);
  EXPECT_EQ(by["local"]["bytes_per_peer"], 0.0);
  EXPECT_GT(by["gossip"]["bytes_per_peer"].get<double>(), 0.0);
  EXPECT_LT(by["gossip"]["bytes_per_peer"].get<double>(), by["diloco"]["bytes_per_peer"].get<double>());
  EXPECT_LT(by["diloco"]["bytes_per_peer"].get<double>(), by["allreduce"]["bytes_per_peer"].get<double>());
  for (const auto& [algo, run] : by) {
    EXPECT_EQ(run["points"].size(), 2u) << algo;
    EXPECT_LT(run["val_loss"].get<double>(), 4.0) << algo;
  }
  EXPECT_TRUE(std::filesystem::exists(lab_out / "results.md"));
  const auto bad_algo = murmur::test::run_command(murmur::test::murmur_cmd(
      "netem lab " + scenario.string() + " --out " + lab_out.string() + " --algo diloco/int8"));
  EXPECT_NE(bad_algo.rc, 0);
  EXPECT_NE(bad_algo.output.find("only gossip takes a codec"), std::string::npos) << bad_algo.output;
}

}  // namespace

// Peers as real processes on loopback: `murmur swarm` and `murmur node`
// training the tiny model over encrypted links, for every algorithm, plus a
// peer killed mid-run and a late joiner.
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "node/process.h"
#include "test_util.h"

using murmur::test::murmur_cmd;
using murmur::test::run_command;
using murmur::test::TempDir;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<json> read_jsonl(const fs::path& p, const char* event) {
  std::vector<json> out;
  std::ifstream f(p);
  std::string line;
  while (std::getline(f, line)) {
    const json e = json::parse(line, nullptr, false);
    if (e.is_object() && e.value("event", "") == event) out.push_back(e);
  }
  return out;
}

class SwarmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // Two documents from one distribution (the validation split is a whole document).
    std::ofstream a(dir_->path() / "a.txt"), b(dir_->path() / "b.txt");
    for (int i = 0; i < 600; ++i) {
      std::ofstream& f = i < 450 ? a : b;
      f << (i % 3 ? "the quick brown fox jumps over the lazy dog " : "pack my box with five dozen jugs ")
        << i % 7 << "\n";
    }
    a.close();
    b.close();
    const auto r =
        run_command(murmur_cmd("data prepare --tokenizer byte --out " + data() + " --input " +
                               (dir_->path() / "a.txt").string() + " " + (dir_->path() / "b.txt").string()));
    ASSERT_EQ(r.rc, 0) << r.output;
    std::ofstream cfg(config());
    cfg << "preset = \"tiny\"\ndata = \"" << data() << "\"\nbatch = 4\ncontext = 32\nthreads = 1\n"
        << "steps = 60\ninner-steps = 10\nlr = 0.003\neval-windows = 8\nckpt-every = 0\n"
        << "wait-max-s = 3\n";
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string data() { return (dir_->path() / "data").string(); }
  static std::string config() { return (dir_->path() / "run.toml").string(); }
  static inline TempDir* dir_ = nullptr;

  json swarm(const std::string& algo, int peers, const std::string& extra = "") {
    const fs::path out = dir_->path() / ("swarm-" + algo);
    const auto r =
        run_command(murmur_cmd("swarm --peers " + std::to_string(peers) + " --config " + config() +
                               " --out " + out.string() + " --algo " + algo + " --timeout 240 " + extra));
    EXPECT_EQ(r.rc, 0) << r.output;
    std::ifstream f(out / "summary.json");
    return json::parse(f, nullptr, false);
  }
};

}  // namespace

TEST_F(SwarmTest, GossipPeersLearnAndAgree) {
  // Throttled to 1000 tokens/s (about 8 s a peer): unthrottled, peer 0 finishes rounds before the
  // others have connected, and they rightly adopt its state as late joiners instead of training.
  const json s = swarm("gossip", 4, "-- --tokens-per-s-limit 1000");
  ASSERT_TRUE(s.is_object());
  ASSERT_EQ(s["peers"].size(), 4u);
  for (const auto& p : s["peers"]) {
    EXPECT_EQ(p.value("status", ""), "finished") << p.dump();
    EXPECT_EQ(p.value("steps", 0), 60);
    // Byte-level text starts at ln(256) = 5.5 nats; the tiny model learns this corpus quickly.
    EXPECT_LT(p.value("final_val_loss", 99.0), 2.5) << p.dump();
    EXPECT_GT(p.value("bytes_sent", 0.0), 0.0);
    const auto rounds = read_jsonl(fs::path(p["dir"].get<std::string>()) / "log.jsonl", "round");
    ASSERT_FALSE(rounds.empty());
    EXPECT_LT(rounds.back()["loss"].get<double>(), rounds.front()["loss"].get<double>());
    // Replicas stay close to their neighbours' public copies (H = 10 local steps apart).
    EXPECT_GT(rounds.back()["neighbours"].get<int>(), 0);
    EXPECT_LT(rounds.back()["consensus_distance"].get<double>(), 0.3);
  }
}

TEST_F(SwarmTest, BaselinesRunOverTheSameTransport) {
  for (const char* algo : {"local", "allreduce", "diloco"}) {
    const json s = swarm(algo, 3);
    ASSERT_TRUE(s.is_object()) << algo;
    for (const auto& p : s["peers"]) {
      EXPECT_EQ(p.value("status", ""), "finished") << algo << " " << p.dump();
      EXPECT_LT(p.value("final_val_loss", 99.0), 3.0) << algo;
      if (std::string(algo) == "local") {
        EXPECT_EQ(p.value("wait_s", 1.0), 0.0);
        // Membership only: no snapshots or deltas (a tiny model's snapshot alone is 400 kB).
        EXPECT_LT(p.value("bytes_sent", 1e9), 100e3) << p.dump();
      }
    }
    if (std::string(algo) != "local") {
      // Synchronous methods end with the same model on every peer.
      const double v0 = s["peers"][0]["final_val_loss"].get<double>();
      for (const auto& p : s["peers"]) EXPECT_NEAR(p["final_val_loss"].get<double>(), v0, 1e-4) << algo;
    }
  }
}

// Peers started one by one: a late joiner adopts the swarm's state, and a
// SIGKILLed peer does not stop the others.
TEST_F(SwarmTest, LateJoinerCatchesUpAndAKilledPeerDoesNotStopTheRest) {
  const fs::path out = dir_->path() / "manual";
  fs::create_directories(out);
  const int n = 4;
  std::ofstream allow(out / "allow.txt");
  std::vector<std::string> pub(n);
  for (int i = 0; i < n; ++i) {
    const fs::path keys = out / ("keys-" + std::to_string(i));
    ASSERT_EQ(run_command(murmur_cmd("keygen --out " + keys.string())).rc, 0);
    std::ifstream f(keys / "peer.pub");
    std::getline(f, pub[i]);
    allow << pub[i] << "\n";
  }
  allow.close();
  std::vector<int> ports;
  for (int i = 0; i < n; ++i) ports.push_back(murmur::free_tcp_port());
  auto start = [&](int i) {
    std::vector<std::string> argv = {
        murmur::test::murmur_bin(), "node", "--config", config(), "--keys",
        (out / ("keys-" + std::to_string(i))).string(), "--listen",
        "tcp://127.0.0.1:" + std::to_string(ports[i]), "--allow", (out / "allow.txt").string(), "--out",
        (out / ("peer-" + std::to_string(i))).string(), "--peer-index", std::to_string(i),
        // Slow enough to join mid-run: 128 tokens per step.
        "--steps", "400", "--tokens-per-s-limit", "3000", "--eval-every", "0"};
    if (i > 0) argv.insert(argv.end(), {"--join", pub[0] + "@127.0.0.1:" + std::to_string(ports[0])});
    return murmur::Process::spawn(argv, out / ("node-" + std::to_string(i) + ".log"));
  };
  std::vector<murmur::Process> procs;
  for (int i = 0; i < 3; ++i) procs.push_back(start(i));
  auto rounds_of = [&](int i) {
    return read_jsonl(out / ("peer-" + std::to_string(i)) / "log.jsonl", "round");
  };
  auto wait_round = [&](int i, size_t r) {
    for (int t = 0; t < 600 && rounds_of(i).size() < r; ++t)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return rounds_of(i).size() >= r;
  };
  ASSERT_TRUE(wait_round(0, 12)) << "peer 0 did not reach round 12";
  procs.push_back(start(3));
  // The joiner takes a neighbour's state instead of starting from scratch.
  ASSERT_TRUE(wait_round(3, 3)) << "the late joiner did not train";
  const auto adopted = read_jsonl(out / "peer-3" / "log.jsonl", "adopted");
  ASSERT_EQ(adopted.size(), 1u);
  const auto joiner = rounds_of(3), old = rounds_of(0);
  EXPECT_GE(joiner.front()["round"].get<int>(), 10);
  // Within 3 rounds of joining its loss is close to the swarm's (not the ~5.5 of a fresh model).
  EXPECT_LT(joiner[2]["loss"].get<double>(), old.back()["loss"].get<double>() * 1.1 + 0.1);

  procs[1].signal(SIGKILL);
  for (int i : {0, 2, 3}) {
    const auto code = procs[static_cast<size_t>(i)].wait_for(std::chrono::seconds(120));
    ASSERT_TRUE(code) << "peer " << i << " did not finish after a neighbour was killed";
    EXPECT_EQ(*code, 0) << "peer " << i;
    std::ifstream f(out / ("peer-" + std::to_string(i)) / "summary.json");
    const json s = json::parse(f, nullptr, false);
    EXPECT_EQ(s.value("status", ""), "finished") << i;
  }
}

// Peers as real processes on loopback: `murmur swarm` and `murmur node`
// training the tiny model over encrypted links, for every algorithm, plus a
// peer killed mid-run and a late joiner.
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "gossip/peer_id.h"
#include "node/launch/process.h"
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

// `murmur node` processes started one by one on loopback: keys, an allow-list and a port each; every
// peer but 0 joins through peer 0.
class ManualSwarm {
 public:
  ManualSwarm(const fs::path& out, int n, std::string config) : out_(out), config_(std::move(config)) {
    fs::create_directories(out);
    std::ofstream allow(out / "allow.txt");
    for (int i = 0; i < n; ++i) {
      pub_.push_back(murmur::test::keygen(out / ("keys-" + std::to_string(i))));
      allow << pub_.back() << "\n";
      ports_.push_back(murmur::launch::free_tcp_port());
    }
  }
  fs::path dir(int i) const { return out_ / ("peer-" + std::to_string(i)); }
  std::string name(int i) const {
    return murmur::gossip::short_name(*murmur::gossip::peer_id_from_z85(pub_[size_t(i)]));
  }
  murmur::launch::Process start(int i, const std::vector<std::string>& extra) const {
    std::vector<std::string> argv = {murmur::test::murmur_bin(),
                                     "node",
                                     "--config",
                                     config_,
                                     "--keys",
                                     (out_ / ("keys-" + std::to_string(i))).string(),
                                     "--listen",
                                     "tcp://127.0.0.1:" + std::to_string(ports_[size_t(i)]),
                                     "--allow",
                                     (out_ / "allow.txt").string(),
                                     "--out",
                                     dir(i).string(),
                                     "--peer-index",
                                     std::to_string(i)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (i > 0) argv.insert(argv.end(), {"--join", pub_[0] + "@127.0.0.1:" + std::to_string(ports_[0])});
    return murmur::launch::Process::spawn(argv, out_ / ("node-" + std::to_string(i) + ".log"));
  }
  std::vector<json> rounds(int i) const { return read_jsonl(dir(i) / "log.jsonl", "round"); }
  bool wait_round(int i, size_t r) const {
    for (int t = 0; t < 600 && rounds(i).size() < r; ++t)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return rounds(i).size() >= r;
  }

 private:
  fs::path out_;
  std::string config_;
  std::vector<std::string> pub_;
  std::vector<int> ports_;
};

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
  const ManualSwarm sw(dir_->path() / "manual", 4, config());
  // Slow enough to join mid-run: 128 tokens per step.
  const std::vector<std::string> flags = {"--steps", "400",          "--tokens-per-s-limit",
                                          "3000",    "--eval-every", "0"};
  std::vector<murmur::launch::Process> procs;
  for (int i = 0; i < 3; ++i) procs.push_back(sw.start(i, flags));
  ASSERT_TRUE(sw.wait_round(0, 12)) << "peer 0 did not reach round 12";
  procs.push_back(sw.start(3, flags));
  // The joiner takes a neighbour's state instead of starting from scratch.
  ASSERT_TRUE(sw.wait_round(3, 3)) << "the late joiner did not train";
  const auto adopted = read_jsonl(sw.dir(3) / "log.jsonl", "adopted");
  ASSERT_EQ(adopted.size(), 1u);
  const auto joiner = sw.rounds(3), old = sw.rounds(0);
  EXPECT_GE(joiner.front()["round"].get<int>(), 10);
  // Within 3 rounds of joining its loss is close to the swarm's (not the ~5.5 of a fresh model).
  EXPECT_LT(joiner[2]["loss"].get<double>(), old.back()["loss"].get<double>() * 1.1 + 0.1);

  procs[1].signal(SIGKILL);
  for (int i : {0, 2, 3}) {
    const auto code = procs[static_cast<size_t>(i)].wait_for(std::chrono::seconds(120));
    ASSERT_TRUE(code) << "peer " << i << " did not finish after a neighbour was killed";
    EXPECT_EQ(*code, 0) << "peer " << i;
    std::ifstream f(sw.dir(i) / "summary.json");
    const json s = json::parse(f, nullptr, false);
    EXPECT_EQ(s.value("status", ""), "finished") << i;
  }
}

// Peers nobody can dial (--reachability outbound: as behind NAT) train with the one others can: they
// open their links themselves and are answered over those connections. A peer that joins with the
// the default (--reachability auto) is dialled back and advertises its address; the outbound-only ones
// advertise none.
TEST_F(SwarmTest, OutboundOnlyPeersTrainThroughTheOnesOthersCanDial) {
  const ManualSwarm sw(dir_->path() / "outbound", 4, config());
  const std::vector<std::string> flags = {"--tokens-per-s-limit", "1000"};
  std::vector<std::string> outbound = flags;
  outbound.insert(outbound.end(), {"--reachability", "outbound"});
  std::vector<murmur::launch::Process> procs;
  procs.push_back(sw.start(0, flags));
  procs.push_back(sw.start(1, flags));  // --reachability auto, the default
  procs.push_back(sw.start(2, outbound));
  procs.push_back(sw.start(3, outbound));
  for (int i = 0; i < 4; ++i) {
    const auto code = procs[static_cast<size_t>(i)].wait_for(std::chrono::seconds(180));
    ASSERT_TRUE(code) << "peer " << i << " did not finish";
    EXPECT_EQ(*code, 0) << "peer " << i;
    const fs::path log = sw.dir(i) / "log.jsonl";
    if (i > 0) {
      const auto reach = read_jsonl(log, "reachability");
      ASSERT_EQ(reach.size(), 1u) << i;
      EXPECT_EQ(reach[0]["dialable"].get<bool>(), i == 1) << i;
    }
    EXPECT_EQ(read_jsonl(log, "first_exchange").size(), 1u) << i;
    const auto rounds = sw.rounds(i);
    ASSERT_FALSE(rounds.empty()) << i;
    EXPECT_LT(rounds.back()["consensus_distance"].get<double>(), 0.3) << i;
    // Peers 2 and 3 link only with 0 and 1 (they cannot reach each other).
    for (const json& up : read_jsonl(log, "link_up"))
      EXPECT_TRUE(i < 2 || up["peer"] != (i == 2 ? sw.name(3) : sw.name(2)));
  }
  // Everyone holds the outbound-only peers without an address, and peer 1 at its own.
  for (const json& m : read_jsonl(sw.dir(0) / "log.jsonl", "member")) {
    if (m["peer"] == sw.name(2) || m["peer"] == sw.name(3)) {
      EXPECT_EQ(m["addr"], "");
    }
  }
}

// A synchronous ring cannot go on without a member: the others stop, but save their model and write
// their summary (status "stopped: ...") instead of dying with nothing kept.
TEST_F(SwarmTest, AllreducePeersSaveAndStopWhenARingMemberDies) {
  const ManualSwarm sw(dir_->path() / "ring-broken", 3, config());
  const std::vector<std::string> flags = {"--algo",         "allreduce", "--expect-peers",       "3",
                                          "--steps",        "100000",    "--tokens-per-s-limit", "3000",
                                          "--eval-windows", "2"};
  std::vector<murmur::launch::Process> procs;
  for (int i = 0; i < 3; ++i) procs.push_back(sw.start(i, flags));
  ASSERT_TRUE(sw.wait_round(0, 2)) << "the ring did not train";
  procs[2].signal(SIGKILL);
  for (int i : {0, 1}) {
    const auto code = procs[size_t(i)].wait_for(std::chrono::seconds(60));
    ASSERT_TRUE(code) << "peer " << i << " did not stop after a ring member was killed";
    EXPECT_NE(*code, 0) << "peer " << i << " did not finish its steps, so it must not exit 0";
    std::ifstream f(sw.dir(i) / "summary.json");
    const json s = json::parse(f, nullptr, false);
    ASSERT_TRUE(s.is_object()) << "peer " << i << " wrote no summary";
    EXPECT_EQ(s.value("status", "").rfind("stopped: all-reduce", 0), 0u) << s.dump();
    EXPECT_GT(s.value("steps", 0), 0);
    EXPECT_TRUE(fs::exists(sw.dir(i) / "latest")) << "peer " << i << " saved no checkpoint";
  }
}

// One admitted peer sends hostile deltas (real processes, the default defences): the honest peers
// finish, learn, cut its links and write their summaries; nobody dies of NaN.
TEST_F(SwarmTest, HonestPeersCutAByzantineNeighbourAndFinish) {
  for (const char* attack : {"sign-flip", "snapshot"}) {
    const ManualSwarm sw(dir_->path() / (std::string("byzantine-") + attack), 4, config());
    const std::vector<std::string> flags = {"--steps", "120",      "--tokens-per-s-limit",
                                            "2000",    "--degree", "3"};
    std::vector<murmur::launch::Process> procs;
    for (int i = 0; i < 3; ++i) procs.push_back(sw.start(i, flags));
    std::vector<std::string> hostile = flags;
    hostile.insert(hostile.end(), {"--byzantine", attack});
    procs.push_back(sw.start(3, hostile));
    uint64_t cut = 0;
    for (int i : {0, 1, 2}) {
      const auto code = procs[size_t(i)].wait_for(std::chrono::seconds(180));
      ASSERT_TRUE(code) << attack << ": peer " << i << " did not finish";
      EXPECT_EQ(*code, 0) << attack << ": peer " << i;
      std::ifstream f(sw.dir(i) / "summary.json");
      const json s = json::parse(f, nullptr, false);
      ASSERT_TRUE(s.is_object()) << attack << ": peer " << i << " wrote no summary";
      EXPECT_EQ(s.value("status", ""), "finished") << s.dump();
      EXPECT_LT(s.value("final_val_loss", 99.0), 2.5) << attack << ": " << s.dump();
      cut += s.value("links_cut", uint64_t{0});
    }
    EXPECT_GT(cut, 0u) << attack << ": no honest peer cut the attacker";
    procs[3].wait_for(std::chrono::seconds(60));
  }
}

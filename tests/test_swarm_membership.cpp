// Membership between real `murmur node` processes on loopback, over CURVE: eight peers join through a
// seed and through chains of others, everyone learns everyone, two SIGKILLed peers are declared dead by
// all the others, and a peer whose key is not on the allow-list is never admitted (and is counted on the
// seed's /metrics); a peer of another run (model, seed) is refused and exits naming the differences.
#include <signal.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
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

// The latest state each peer's log gives every other peer (by short name).
std::map<std::string, std::string> member_states(const fs::path& log) {
  std::map<std::string, std::string> out;
  std::ifstream f(log);
  std::string line;
  while (std::getline(f, line)) {
    const json e = json::parse(line, nullptr, false);
    if (e.is_object() && e.value("event", "") == "member") out[e.value("peer", "")] = e.value("state", "");
  }
  return out;
}

template <class Pred>
bool wait_until(Pred pred, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return pred();
}

// Peers of one run in a temporary directory: a small corpus, `keys` key pairs of which the first `allowed`
// are on the allow-list, a port each.
struct LocalRun {
  TempDir dir;
  fs::path out = dir.path();
  std::vector<std::string> pub, name;
  std::vector<int> port;

  LocalRun(int keys, int allowed) {
    {
      std::ofstream t(out / "a.txt");
      for (int i = 0; i < 400; ++i) t << "all the peers gossip about each other " << i % 5 << "\n";
    }
    EXPECT_EQ(run_command(murmur_cmd("data prepare --tokenizer byte --out " + (out / "data").string() +
                                     " --input " + (out / "a.txt").string()))
                  .rc,
              0);
    std::ofstream allow(out / "allow.txt");
    for (int i = 0; i < keys; ++i) {
      pub.push_back(murmur::test::keygen(out / ("keys-" + std::to_string(i))));
      name.push_back(murmur::gossip::short_name(*murmur::gossip::peer_id_from_z85(pub.back())));
      if (i < allowed) allow << pub.back() << "\n";
      port.push_back(murmur::launch::free_tcp_port());
    }
  }
  fs::path log_of(int i) const { return out / ("peer-" + std::to_string(i)) / "log.jsonl"; }
  fs::path output_of(int i) const { return out / ("node-" + std::to_string(i) + ".log"); }
  // `murmur node` for peer i, joining through `via` (none if negative), with `extra` flags.
  murmur::launch::Process start(int i, int via, std::vector<std::string> extra = {}) const {
    std::vector<std::string> argv = {
        murmur::test::murmur_bin(), "node", "--preset", "tiny", "--data", (out / "data").string(), "--algo",
        "local", "--keys", (out / ("keys-" + std::to_string(i))).string(), "--listen",
        "tcp://127.0.0.1:" + std::to_string(port[size_t(i)]), "--allow", (out / "allow.txt").string(),
        "--out", (out / ("peer-" + std::to_string(i))).string(),
        // Training only keeps the process busy: slow, long, no evaluations.
        "--batch", "2", "--context", "16", "--steps", "1000000", "--tokens-per-s-limit", "100",
        "--eval-every", "0", "--ckpt-every", "0"};
    if (via >= 0)
      argv.insert(argv.end(),
                  {"--join", pub[size_t(via)] + "@127.0.0.1:" + std::to_string(port[size_t(via)])});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return murmur::launch::Process::spawn(argv, output_of(i));
  }
};

TEST(SwarmMembership, EightPeersJoinDetectTwoCrashesAndRefuseAStranger) {
  constexpr int n = 8;
  const LocalRun run(n + 1, n);  // key n is the stranger's: not on the allow-list
  const std::vector<std::string>& name = run.name;
  const int metrics_port = murmur::launch::free_tcp_port();  // the seed's /metrics
  auto log_of = [&](int i) { return run.log_of(i); };
  auto start = [&](int i, int via) {
    return run.start(i, via,
                     i == 0 ? std::vector<std::string>{"--metrics-port", std::to_string(metrics_port)}
                            : std::vector<std::string>{});
  };
  // Peer 0 is the seed; 1-3 join through it; 4-7 through a chain (4 via 1, 5 via 4, 6 via 5, 7 via 6).
  std::vector<murmur::launch::Process> procs;
  procs.push_back(start(0, -1));
  for (int i = 1; i <= 3; ++i) procs.push_back(start(i, 0));
  procs.push_back(start(4, 1));
  for (int i = 5; i < n; ++i) procs.push_back(start(i, i - 1));
  murmur::launch::Process stranger = start(n, 0);

  auto sees = [&](int i, int j, const char* state) {
    const auto m = member_states(log_of(i));
    auto it = m.find(name[j]);
    return it != m.end() && it->second == state;
  };
  auto everyone_sees_everyone = [&] {
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        if (i != j && !sees(i, j, "alive")) return false;
    return true;
  };
  ASSERT_TRUE(wait_until(everyone_sees_everyone, std::chrono::seconds(60)))
      << "the eight peers did not all learn of each other";

  procs[6].signal(SIGKILL);
  procs[7].signal(SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  auto both_dead_everywhere = [&] {
    for (int i = 0; i < 6; ++i)
      if (!sees(i, 6, "dead") || !sees(i, 7, "dead")) return false;
    return true;
  };
  ASSERT_TRUE(wait_until(both_dead_everywhere, std::chrono::seconds(30)))
      << "the survivors did not all declare the killed peers dead";
  const double detect_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  RecordProperty("detection_s", std::to_string(detect_s));
  std::printf("both crashes known to all six survivors %.1f s after SIGKILL\n", detect_s);
  // The survivors still agree on each other: no false suspicion turned into a death.
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j) {
      if (i != j) {
        EXPECT_TRUE(sees(i, j, "alive")) << i << " about " << j;
      }
    }
  // The stranger was never admitted: no member peer heard of it, and it heard of nobody.
  for (int i = 0; i < n; ++i) EXPECT_EQ(member_states(log_of(i)).count(name[n]), 0u) << "peer " << i;
  EXPECT_TRUE(member_states(log_of(n)).empty());
  // The seed's operators see the refusals, and no series names the stranger.
  const std::string metrics = murmur::test::http_get(metrics_port, "/metrics");
  const size_t denied = metrics.find("\nmurmur_zap_denied_total ");
  ASSERT_NE(denied, std::string::npos) << metrics;
  EXPECT_GE(std::stoi(metrics.substr(denied + 25)), 1) << metrics;
  EXPECT_NE(metrics.find("# TYPE murmur_transport_dropped_total counter"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find(name[n]), std::string::npos) << metrics;
  for (int i = 0; i < 6; ++i) procs[static_cast<size_t>(i)].signal(SIGTERM);
  stranger.signal(SIGTERM);
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(procs[static_cast<size_t>(i)].wait_for(std::chrono::seconds(30)));
}

// A peer started with another model and seed asks a running peer to join: refused, it names both
// differences and exits non-zero (no hang), and the running peer never lists it.
TEST(SwarmMembership, APeerOfAnotherRunIsRefusedAndExitsNamingTheDifferences) {
  const LocalRun run(2, 2);
  murmur::launch::Process seed = run.start(0, -1);
  murmur::launch::Process other = run.start(1, 0, {"--n-layer", "1", "--seed", "7"});
  const std::optional<int> code = other.wait_for(std::chrono::seconds(60));
  ASSERT_TRUE(code) << "the refused peer did not exit";
  EXPECT_NE(*code, 0);
  std::ifstream f(run.output_of(1));
  std::stringstream output_stream;
  output_stream << f.rdbuf();
  const std::string output = output_stream.str();
  const std::string differences = "model n_layer: 1 here, 2 there; seed: 7 here, 1337 there";
  EXPECT_NE(output.find("error: no peer admitted this one: peer " + run.name[0] + " is of another run (" +
                        differences + ")"),
            std::string::npos)
      << output;
  // The running peer logged the refusal, from its side, and never admitted the other.
  ASSERT_TRUE(wait_until(
      [&] {
        std::ifstream l(run.log_of(0));
        std::string line;
        while (std::getline(l, line)) {
          const json e = json::parse(line, nullptr, false);
          if (e.is_object() && e.value("event", "") == "refused" && e.value("peer", "") == run.name[1] &&
              e.value("differences", "") == "model n_layer: 2 here, 1 there; seed: 1337 here, 7 there")
            return true;
        }
        return false;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(member_states(run.log_of(0)).count(run.name[1]), 0u);
  EXPECT_TRUE(seed.running());
  seed.signal(SIGTERM);
  EXPECT_TRUE(seed.wait_for(std::chrono::seconds(30)));
}

// A joiner that sets only its keys, data and join address takes the run's other settings (here the seed's
// --seed and --inner-steps) and is admitted; what it sets itself it keeps.
TEST(SwarmMembership, AJoinerTakesTheRunsSettingsItDidNotSet) {
  const LocalRun run(2, 2);
  murmur::launch::Process seed = run.start(0, -1, {"--seed", "7", "--inner-steps", "20"});
  murmur::launch::Process joiner = run.start(1, 0);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto m = member_states(run.log_of(0));
        return m.count(run.name[1]) && m.at(run.name[1]) == "alive";
      },
      std::chrono::seconds(60)))
      << "the joiner was not admitted";
  std::ifstream f(run.output_of(1));
  std::stringstream out;
  out << f.rdbuf();
  EXPECT_NE(out.str().find("settings taken from the run"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("seed: 7 here, 1337 there"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("inner steps: 20 here, 50 there"), std::string::npos) << out.str();
  EXPECT_TRUE(joiner.running());
  for (auto* p : {&joiner, &seed}) {
    p->signal(SIGTERM);
    EXPECT_TRUE(p->wait_for(std::chrono::seconds(30)));
  }
}

}  // namespace

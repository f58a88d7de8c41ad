// Membership between real `murmur node` processes on loopback, over CURVE: eight peers join through a
// seed and through chains of others, everyone learns everyone, two SIGKILLed peers are declared dead by
// all the others, and a peer whose key is not on the allow-list is never admitted (and is counted on the
// seed's /metrics).
#include <signal.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
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

TEST(SwarmMembership, EightPeersJoinDetectTwoCrashesAndRefuseAStranger) {
  TempDir dir;
  const fs::path out = dir.path();
  {
    std::ofstream t(out / "a.txt");
    for (int i = 0; i < 400; ++i) t << "all the peers gossip about each other " << i % 5 << "\n";
  }
  ASSERT_EQ(run_command(murmur_cmd("data prepare --tokenizer byte --out " + (out / "data").string() +
                                   " --input " + (out / "a.txt").string()))
                .rc,
            0);
  constexpr int n = 8;
  std::vector<std::string> pub(n + 1), name(n + 1);
  std::ofstream allow(out / "allow.txt");
  for (int i = 0; i <= n; ++i) {  // key n is the stranger's: not on the allow-list
    const fs::path keys = out / ("keys-" + std::to_string(i));
    ASSERT_EQ(run_command(murmur_cmd("keygen --out " + keys.string())).rc, 0);
    std::ifstream f(keys / "peer.pub");
    std::getline(f, pub[i]);
    name[i] = murmur::gossip::short_name(*murmur::gossip::peer_id_from_z85(pub[i]));
    if (i < n) allow << pub[i] << "\n";
  }
  allow.close();
  std::vector<int> port;
  for (int i = 0; i <= n; ++i) port.push_back(murmur::launch::free_tcp_port());
  const int metrics_port = murmur::launch::free_tcp_port();  // the seed's /metrics
  auto log_of = [&](int i) { return out / ("peer-" + std::to_string(i)) / "log.jsonl"; };
  auto start = [&](int i, int via) {
    std::vector<std::string> argv = {
        murmur::test::murmur_bin(), "node", "--preset", "tiny", "--data", (out / "data").string(), "--algo",
        "local", "--keys", (out / ("keys-" + std::to_string(i))).string(), "--listen",
        "tcp://127.0.0.1:" + std::to_string(port[i]), "--allow", (out / "allow.txt").string(), "--out",
        (out / ("peer-" + std::to_string(i))).string(),
        // Training only keeps the process busy: slow, long, no evaluations.
        "--batch", "2", "--context", "16", "--steps", "1000000", "--tokens-per-s-limit", "100",
        "--eval-every", "0", "--ckpt-every", "0"};
    if (via >= 0) argv.insert(argv.end(), {"--join", pub[via] + "@127.0.0.1:" + std::to_string(port[via])});
    if (i == 0) argv.insert(argv.end(), {"--metrics-port", std::to_string(metrics_port)});
    return murmur::launch::Process::spawn(argv, out / ("node-" + std::to_string(i) + ".log"));
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

}  // namespace

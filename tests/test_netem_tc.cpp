// The kernel backend's plan (pure: names, addresses, tc arguments) and, as root, its topology: the
// namespaces, veth pairs, bridge, htb classes and filters built by the same commands with each netem leaf
// swapped for pfifo, so the wiring is checked even where the kernel lacks sch_netem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "netem/emulator.h"
#include "netem/tc_emulator.h"
#include "test_util.h"

namespace netem = murmur::netem;
using namespace std::chrono_literals;
using murmur::test::run_command;
using netem::Argv;

namespace {

netem::Scenario three_peers() {
  return netem::parse_scenario(R"(
name = "t"
duration = "1min"
[[site]]
name = "a"
peers = 2
link = { delay = "1ms" }
[[site]]
name = "b"
peers = 1
[[link]]
sites = ["a", "b"]
delay = "30ms"
jitter = "2ms"
loss = "0.5%"
up = { bandwidth = "10mbit" }
down = { bandwidth = "50mbit", duplicate = "1%" }
)");
}

bool has(const Argv& a, const std::vector<std::string>& seq) {
  return std::search(a.begin(), a.end(), seq.begin(), seq.end()) != a.end();
}

}  // namespace

TEST(TcPlan, NetemOptionsFollowTheProfile) {
  const netem::LinkProfile p{.rate_bps = 200e6, .delay = 40ms, .jitter = 2ms, .loss = 1, .reorder = 5};
  const Argv a = netem::netem_options(p);
  EXPECT_TRUE(has(a, {"delay", "40000us", "2000us"}));
  EXPECT_TRUE(has(a, {"rate", "200000000bit"}));
  EXPECT_TRUE(has(a, {"loss", "1%"}));
  EXPECT_TRUE(has(a, {"reorder", "5%"}));
  EXPECT_FALSE(has(a, {"duplicate"}));
  // Twice the bandwidth-delay product (42 ms + 50 ms at 200 Mbit/s) in 1500-byte packets.
  EXPECT_TRUE(has(a, {"limit", "3066"}));
  const Argv unlimited = netem::netem_options({});
  EXPECT_FALSE(has(unlimited, {"rate"}));
  EXPECT_TRUE(has(unlimited, {"delay", "0us", "limit"}));
  EXPECT_THROW(netem::netem_options({.reorder = 1}), std::invalid_argument);  // reorder needs a delay
  EXPECT_THROW(netem::netem_options({.loss = 101}), std::invalid_argument);
}

TEST(TcPlan, EveryPeerShapesEachDestinationWithItsSitesProfile) {
  const netem::Scenario s = three_peers();
  const auto routes = netem::layout_routes(s);
  const auto pair = netem::pair_profiles(routes, 3);
  EXPECT_EQ(pair[0][2].rate_bps, 10e6);  // a -> b: up
  EXPECT_EQ(pair[2][0].rate_bps, 50e6);  // b -> a: down
  EXPECT_EQ(pair[2][0].duplicate, 1);
  EXPECT_EQ(pair[0][2].loss, 0.5);
  EXPECT_EQ(pair[0][1].delay, 1ms);  // within site a

  const netem::TcTopology t = netem::tc_topology(3, 0xabc);
  EXPECT_EQ(t.hub, "mmabc-h");
  EXPECT_EQ(t.peer_ns, (std::vector<std::string>{"mmabc-0", "mmabc-1", "mmabc-2"}));
  EXPECT_EQ(t.peer_addr[2], "10.201.0.3");
  const std::vector<Argv> cmds = netem::tc_setup_commands(t, pair);
  EXPECT_EQ(cmds.front(), (Argv{"ip", "netns", "add", "mmabc-h"}));
  int netem_leaves = 0;
  for (const Argv& c : cmds) netem_leaves += has(c, {"netem"});
  EXPECT_EQ(netem_leaves, 6);  // one per ordered pair
  // Peer 0 sends to peer 2 (10.201.0.3) through class 1:4 and its netem leaf 4:.
  const auto filter = std::find_if(cmds.begin(), cmds.end(), [](const Argv& c) {
    return has(c, {"tc", "-n", "mmabc-0", "filter"}) && has(c, {"dst", "10.201.0.3/32", "flowid", "1:4"});
  });
  EXPECT_NE(filter, cmds.end());
  Argv leaf = {"tc",   "-n",     "mmabc-0", "qdisc",  "add", "dev",
               "eth0", "parent", "1:4",     "handle", "4:",  "netem"};
  for (const std::string& o : netem::netem_options(pair[0][2])) leaf.push_back(o);
  EXPECT_NE(std::find(cmds.begin(), cmds.end(), leaf), cmds.end());

  netem::LinkProfile cut = pair[2][0];
  cut.loss = 100;
  const Argv change = netem::tc_change_command(t, 2, 0, cut);
  EXPECT_TRUE(has(
      change, {"tc", "-n", "mmabc-2", "qdisc", "change", "dev", "eth0", "parent", "1:2", "handle", "2:"}));
  EXPECT_TRUE(has(change, {"loss", "100%"}));
}

TEST(TcPlan, TheRelayRefusesPacketImpairments) {
  const auto routes = netem::layout_routes(three_peers());
  try {
    netem::make_relay_emulator(routes, {1, 2, 3});
    FAIL() << "the relay accepted a lossy link";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--backend tc"), std::string::npos) << e.what();
  }
}

TEST(TcPlan, RefusesSitesSharedWan) {
  EXPECT_NO_THROW(netem::check_tc_scenario(three_peers()));
  const netem::Scenario s = netem::parse_scenario(
      "name = \"x\"\nduration = \"1min\"\n[[site]]\nname = \"a\"\npeers = 2\nuplink = \"20mbit\"\n");
  try {
    netem::check_tc_scenario(s);
    FAIL() << "accepted a site uplink";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--backend tc:", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("uplink"), std::string::npos) << e.what();
  }
}

// The setup commands as root, each netem leaf replaced by pfifo: namespaces, veths, bridge, classes and
// filters must build, carry TCP between the peers' addresses, and go away on teardown.
TEST(TcTopology, BuildsConnectsAndTearsDown) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_NET_ADMIN) for network namespaces";
  if (run_command("ip -V").rc != 0 || run_command("tc -V").rc != 0)
    GTEST_SKIP() << "iproute2 (ip, tc) is not installed";
  if (run_command("python3 -c pass").rc != 0) GTEST_SKIP() << "python3 is not installed";
  const netem::TcTopology t = netem::tc_topology(3, uint32_t(::getpid()) ^ 0x5a5a5a);
  // Containers may refuse namespaces, veth pairs, bridges or htb: then there is nothing to test here.
  const auto probe = run_command("ip netns add " + t.hub + " && ip -n " + t.hub +
                                 " link add p0 type veth peer name p1 && ip -n " + t.hub +
                                 " link add b0 type bridge && tc -n " + t.hub +
                                 " qdisc add dev p0 root handle 1: htb default 1");
  run_command("ip netns del " + t.hub);
  if (probe.rc != 0)
    GTEST_SKIP() << "this machine cannot build namespaces, veth, bridges or htb: " << probe.output;
  const auto pair = netem::pair_profiles(netem::layout_routes(three_peers()), 3);
  std::vector<std::string> made;
  for (Argv c : netem::tc_setup_commands(t, pair)) {
    if (const auto n = std::find(c.begin(), c.end(), "netem"); n != c.end()) {
      c.erase(n, c.end());
      c.push_back("pfifo");
    }
    std::string line;
    for (const std::string& x : c) line += x + " ";
    const auto r = run_command(line);
    EXPECT_EQ(r.rc, 0) << line << "\n" << r.output;
    if (c.size() > 3 && c[1] == "netns" && c[2] == "add") made.push_back(c[3]);
  }
  // A listener in peer 1's namespace answers a connection from peer 0's.
  const std::string server = "ip netns exec " + t.peer_ns[1] +
                             " python3 -c \"import socket; s=socket.create_server(('" + t.peer_addr[1] +
                             "', 7700)); c,_=s.accept(); c.sendall(c.recv(5))\" & sleep 1; ";
  const std::string client = "ip netns exec " + t.peer_ns[0] +
                             " python3 -c \"import socket; c=socket.create_connection(('" + t.peer_addr[1] +
                             "', 7700), timeout=5); c.sendall(b'hello'); print(c.recv(5).decode())\"";
  const auto r = run_command(server + "timeout 10 " + client);
  EXPECT_NE(r.output.find("hello"), std::string::npos) << r.output;
  const auto classes = run_command("tc -n " + t.peer_ns[0] + " -s class show dev eth0");
  EXPECT_NE(classes.output.find("class htb 1:3"), std::string::npos) << classes.output;  // to peer 1
  for (auto it = made.rbegin(); it != made.rend(); ++it) run_command("ip netns del " + *it);
  const auto left = run_command("ip netns list");
  for (const std::string& ns : made) {
    EXPECT_EQ(left.output.find(ns + "\n"), std::string::npos) << left.output;
    EXPECT_EQ(left.output.find(ns + " "), std::string::npos) << left.output;
  }
}

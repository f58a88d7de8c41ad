// Scenario files: every shipped scenario parses; a small one is checked field by field; bad ones fail
// with errors naming the field and line.
#include <gtest/gtest.h>

#include <filesystem>

#include "netem/scenario.h"

namespace murmur::netem {
namespace {

using namespace std::chrono_literals;

TEST(NetemScenario, EveryShippedScenarioParses) {
  const std::filesystem::path dir = std::filesystem::path(MURMUR_SOURCE_DIR) / "netem" / "scenarios";
  int n = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() != ".toml") continue;
    SCOPED_TRACE(f.path().string());
    const Scenario s = load_scenario(f.path());
    EXPECT_EQ(s.name, f.path().stem().string());
    EXPECT_FALSE(s.peers.empty());
    EXPECT_FALSE(s.training.empty());
    EXPECT_EQ(layout_routes(s).size(), s.peers.size() * (s.peers.size() - 1));
    ++n;
  }
  EXPECT_GE(n, 4);
}

constexpr const char* kSmall = R"(
name = "small"
duration = "5min"

[training]
preset = "tiny"
H = 10
gamma = 0.5
open = true

[[site]]
name = "eu"
peers = 2
compute = [1.0, 0.5]
link = { bandwidth = "1gbit", delay = "1ms" }

[[site]]
name = "us"
peers = 1

[[link]]
sites = ["us", "eu"]
delay = "40ms"
up = { bandwidth = "10mbit" }
down = { bandwidth = "50mbit", jitter = "2ms" }

[[event]]
at = "2min"
action = "partition"
sites = ["eu", "us"]
mode = "reset"

[[event]]
at = "30s"
action = "join"
peer = "us-0"

[[event]]
at = "3min"
action = "set_link"
sites = ["eu", "us"]
direction = "up"
bandwidth = "1mbit"
)";

TEST(NetemScenario, ParsesEveryField) {
  const Scenario s = parse_scenario(kSmall);
  EXPECT_EQ(s.duration, 5min);
  ASSERT_EQ(s.peers.size(), 3u);
  EXPECT_EQ(s.peers[1].name, "eu-1");
  EXPECT_DOUBLE_EQ(s.peers[1].compute, 0.5);
  EXPECT_EQ(s.peers[2].name, "us-0");
  EXPECT_EQ(s.peers[2].site, 1u);
  EXPECT_FALSE(s.peers[2].starts);  // started by its join event
  EXPECT_TRUE(s.peers[0].starts);
  EXPECT_DOUBLE_EQ(s.sites[0].local.up.rate_bps, 1e9);
  EXPECT_EQ(s.sites[0].local.down.delay, 1ms);
  // Declared us -> eu: up is us -> eu.
  const LinkShape eu_us = s.shape_between(0, 1);
  EXPECT_DOUBLE_EQ(eu_us.up.rate_bps, 50e6);
  EXPECT_EQ(eu_us.up.jitter, 2ms);
  EXPECT_DOUBLE_EQ(eu_us.down.rate_bps, 10e6);
  EXPECT_EQ(eu_us.down.delay, 40ms);
  const std::vector<std::pair<std::string, std::string>> training{
      {"H", "10"}, {"gamma", "0.5"}, {"open", "true"}, {"preset", "tiny"}};
  EXPECT_EQ(s.training, training);
  EXPECT_NE(s.training_toml.find("preset = 'tiny'"), std::string::npos) << s.training_toml;
  ASSERT_EQ(s.events.size(), 3u);  // sorted by time
  EXPECT_EQ(s.events[0].kind, EventKind::join);
  EXPECT_EQ(s.events[1].kind, EventKind::partition);
  EXPECT_EQ(s.events[1].mode, PartitionMode::reset);
  EXPECT_EQ(s.events[2].kind, EventKind::set_link);
  EXPECT_TRUE(s.events[2].up);
  EXPECT_FALSE(s.events[2].down);
  EXPECT_DOUBLE_EQ(*s.events[2].bandwidth_bps, 1e6);
  EXPECT_FALSE(s.events[2].delay);
}

TEST(NetemScenario, RoutesCoverEveryOrderedPair) {
  const Scenario s = parse_scenario(kSmall);
  const std::vector<Route> routes = layout_routes(s);
  ASSERT_EQ(routes.size(), 6u);
  for (const Route& r : routes) {
    EXPECT_NE(r.dialer, r.listener);
    const LinkShape want = s.shape_between(s.peers[r.dialer].site, s.peers[r.listener].site);
    EXPECT_EQ(r.shape.up, want.up);
    EXPECT_EQ(r.shape.down, want.down);
    EXPECT_EQ(route_matches(r, {0, 1}), r.dialer_site != r.listener_site);
    EXPECT_EQ(route_matches(r, {1}), r.dialer_site != r.listener_site);
    EXPECT_EQ(route_matches(r, {0, 0}), r.dialer_site == 0 && r.listener_site == 0);
  }
}

TEST(NetemScenario, SitesShareTheirWan) {
  const Scenario s = parse_scenario(R"(
name = "wan"
duration = "5min"

[[site]]
name = "eu"
peers = 2
uplink = "20mbit"
downlink = { bandwidth = "100mbit", delay = "5ms" }

[[site]]
name = "us"
peers = 1

[[event]]
at = "1min"
action = "set_site"
site = "eu"
uplink = { delay = "30ms" }

[[event]]
at = "2min"
action = "set_site"
site = "eu"
uplink = "5mbit"
downlink = { bandwidth = "1gbit", delay = "0ms" }
)");
  EXPECT_TRUE(s.shares_wan());
  ASSERT_TRUE(s.sites[0].uplink && s.sites[0].downlink);
  EXPECT_DOUBLE_EQ(s.sites[0].uplink->rate_bps, 20e6);
  EXPECT_EQ(s.sites[0].uplink->delay, 0ms);
  EXPECT_DOUBLE_EQ(s.sites[0].downlink->rate_bps, 100e6);
  EXPECT_EQ(s.sites[0].downlink->delay, 5ms);
  EXPECT_FALSE(s.sites[1].uplink || s.sites[1].downlink);
  // The pair profiles are untouched: the shared links come on top of them.
  EXPECT_TRUE(s.shape_between(0, 1).up.unshaped());
  ASSERT_EQ(s.events.size(), 2u);
  const ScenarioEvent& delay = s.events[0];
  EXPECT_EQ(delay.kind, EventKind::set_site);
  EXPECT_EQ(delay.sites, std::vector<size_t>{0});
  ASSERT_TRUE(delay.uplink);
  EXPECT_FALSE(delay.downlink);
  const LinkProfile up = delay.uplink->applied_to(*s.sites[0].uplink);  // only the delay changes
  EXPECT_DOUBLE_EQ(up.rate_bps, 20e6);
  EXPECT_EQ(up.delay, 30ms);
  EXPECT_DOUBLE_EQ(*s.events[1].uplink->bandwidth_bps, 5e6);
  EXPECT_DOUBLE_EQ(*s.events[1].downlink->bandwidth_bps, 1e9);
  EXPECT_EQ(*s.events[1].downlink->delay, 0ms);
  EXPECT_FALSE(
      parse_scenario("name = \"x\"\nduration = \"1min\"\n[[site]]\nname = \"a\"\npeers = 1\n").shares_wan());
}

struct BadCase {
  std::string toml, expect1, expect2;
};

TEST(NetemScenario, BadScenariosNameTheField) {
  const std::string head = "name = \"x\"\nduration = \"10min\"\n";
  const std::string site = "[[site]]\nname = \"a\"\npeers = 2\n";
  const std::vector<BadCase> cases = {
      {head + site + "link = { bandwidth = \"10mb\" }\n", "bad:6: site[0].link.bandwidth", "ambiguous"},
      {head + site + "colour = \"red\"\n", "site[0].colour", "unknown field"},
      {head + site + "compute = [1.0]\n", "site[0].compute", "one value per peer"},
      {head + site + "compute = 0\n", "site[0].compute", "must be in"},
      {head + "[[site]]\nname = \"a\"\npeers = 1.5\n", "site[0].peers", "whole number"},
      {head + site + site, "site[1].name", "duplicate site"},
      {head + site + "[[event]]\nat = \"1min\"\naction = \"kill\"\npeer = \"a-9\"\n", "bad:9: event[0].peer",
       "no peer named"},
      {head + site + "[[event]]\nat = \"1min\"\naction = \"explode\"\n", "event[0].action", "unknown action"},
      {head + site + "[[event]]\nat = \"1h\"\naction = \"kill\"\npeer = \"a-0\"\n", "event[0].at", "after"},
      {head + site + "[[event]]\nat = \"90\"\naction = \"kill\"\npeer = \"a-0\"\n", "event[0].at",
       "missing unit"},
      {head + site + "[[event]]\nat = \"1min\"\naction = \"heal\"\nsites = [\"b\"]\n", "event[0].sites",
       "no site named"},
      {head + site + "[[event]]\nat = \"1min\"\naction = \"set_link\"\nsites = [\"a\", \"a\"]\n", "event[0]",
       "needs bandwidth"},
      {head + site + "[[link]]\nsites = [\"a\", \"a\"]\n", "link[0].sites", "two different sites"},
      {head + site + "uplink = \"0mbit\"\n", "bad:6: site[0].uplink", "above 0"},
      {head + site + "uplink = \"unlimited\"\n", "site[0].uplink", "finite"},
      {head + site + "downlink = \"20mb\"\n", "site[0].downlink", "ambiguous"},
      {head + site + "uplink = { delay = \"5ms\" }\n", "site[0].uplink.bandwidth", "missing"},
      {head + site + "uplink = { bandwidth = \"1mbit\", delay = \"-5ms\" }\n", "site[0].uplink.delay", ""},
      {head + site + "uplink = { bandwidth = \"1mbit\", delay = \"2min\" }\n", "site[0].uplink.delay", ""},
      {head + site + "uplink = { bandwidth = \"1mbit\", jitter = \"5ms\" }\n", "site[0].uplink.jitter",
       "unknown field"},
      {head + site + "uplink = 20\n", "site[0].uplink", "expected a table"},
      {head + site + "[[event]]\nat = \"1min\"\naction = \"set_site\"\nsite = \"a\"\nuplink = \"1mbit\"\n",
       "bad:10: event[0].uplink", "no uplink to change"},
      {head + site + "uplink = \"1mbit\"\n[[event]]\nat = \"1min\"\naction = \"set_site\"\nsite = \"a\"\n",
       "event[0]", "needs uplink or downlink"},
      {head + site +
           "uplink = \"1mbit\"\n[[event]]\nat = \"1min\"\naction = \"set_site\"\nuplink = \"2mbit\"\n",
       "event[0].site", "missing"},
      {head + site + "[[event]]\nat = \"1min\"\naction = \"set_site\"\nsite = \"b\"\n", "event[0].site",
       "no site named"},
      {head + site + "[training]\nnested = { a = 1 }\n", "training.nested", "expected a string"},
      {"duration = \"1min\"\n" + site, "name", "missing"},
      {"name = \"x\"\n" + site, "duration", "positive duration"},
      {head, "site", "at least one"},
      {head + "[[site]\n", "bad:3", ""},
  };
  for (const BadCase& c : cases) {
    try {
      parse_scenario(c.toml, "bad");
      ADD_FAILURE() << "accepted:\n" << c.toml;
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(c.expect1), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.expect2), std::string::npos) << msg;
    }
  }
  EXPECT_THROW(load_scenario("/nonexistent.toml"), std::invalid_argument);
}

}  // namespace
}  // namespace murmur::netem

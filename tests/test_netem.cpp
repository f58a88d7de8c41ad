// netem: the unit parsers, the shaping model on a virtual clock (exact), and the relay over real TCP on
// 127.0.0.1 (goodput, added delay, ordering under jitter, partitions, traces).
#include <gtest/gtest.h>

#include <thread>

#include "netem/emulator.h"
#include "netem/probe.h"
#include "netem/relay.h"
#include "netem/shaper.h"
#include "netem/units.h"

namespace murmur::netem {
namespace {

using namespace std::chrono_literals;

TEST(NetemUnits, Bandwidths) {
  EXPECT_DOUBLE_EQ(parse_bandwidth("10mbit"), 1e7);
  EXPECT_DOUBLE_EQ(parse_bandwidth("1.5gbit"), 1.5e9);
  EXPECT_DOUBLE_EQ(parse_bandwidth("500kbit"), 5e5);
  EXPECT_DOUBLE_EQ(parse_bandwidth("2000bps"), 2000);
  EXPECT_DOUBLE_EQ(parse_bandwidth("64KB"), 512e3);
  EXPECT_DOUBLE_EQ(parse_bandwidth("1MB/s"), 8e6);
  EXPECT_DOUBLE_EQ(parse_bandwidth("1MiB"), 8.0 * 1048576);
  EXPECT_EQ(parse_bandwidth("unlimited"), kUnlimited);
  for (const char* bad : {"10", "10mb", "Mb", "-1mbit", "0mbit", "10 mbit", "1e3mbit", "10furlongs", ""}) {
    EXPECT_THROW(parse_bandwidth(bad), std::invalid_argument) << bad;
  }
  try {
    parse_bandwidth("10mb");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("ambiguous"), std::string::npos) << e.what();
  }
}

TEST(NetemUnits, DurationsBytesAddresses) {
  EXPECT_EQ(parse_duration("20ms"), 20ms);
  EXPECT_EQ(parse_duration("2.5ms"), 2500us);
  EXPECT_EQ(parse_duration("500us"), 500us);
  EXPECT_EQ(parse_duration("90s"), 90s);
  EXPECT_EQ(parse_duration("2min"), 120s);
  for (const char* bad : {"20", "20m", "ms", "-1s", "2days"})
    EXPECT_THROW(parse_duration(bad), std::invalid_argument);
  EXPECT_THROW(parse_duration("2min", 60s), std::invalid_argument);
  EXPECT_EQ(parse_bytes("64KiB"), 65536u);
  EXPECT_EQ(parse_bytes("1500B"), 1500u);
  EXPECT_THROW(parse_bytes("2GiB"), std::invalid_argument);
  const HostPort hp = parse_host_port("127.0.0.1:9000");
  EXPECT_EQ(hp.host, "127.0.0.1");
  EXPECT_EQ(hp.port, 9000);
  EXPECT_EQ(parse_host_port("[::1]:80").host, "::1");
  EXPECT_EQ(parse_host_port("localhost:0", true).port, 0);
  for (const char* bad : {"9000", ":9000", "h:", "h:70000", "h:x", "h:0"}) {
    EXPECT_THROW(parse_host_port(bad), std::invalid_argument) << bad;
  }
}

constexpr double k8Mbit = 8e6;  // 1 byte per microsecond: times below are exact

TEST(NetemShaper, TokenBucketSpacesChunksAtTheRate) {
  Shaper s({.rate_bps = k8Mbit, .burst_bytes = 1000});
  EXPECT_EQ(s.release(0ns, 1000), 0ns);  // the bucket starts full
  EXPECT_EQ(s.release(0ns, 1000), 1ms);
  EXPECT_EQ(s.release(0ns, 500), 1500us);
  EXPECT_EQ(s.release(10ms, 1000), 10ms);  // refilled (capped at the burst) while idle
  EXPECT_EQ(s.release(10ms, 1000), 11ms);
}

TEST(NetemShaper, ChunksLargerThanTheBurstLeaveADebt) {
  Shaper s({.rate_bps = k8Mbit, .burst_bytes = 1000});
  EXPECT_EQ(s.release(0ns, 3000), 0ns);
  EXPECT_EQ(s.release(0ns, 1000), 3ms);  // 2000 B of debt, then 1000 B of tokens
  EXPECT_EQ(s.release(0ns, 1000), 4ms);
}

TEST(NetemShaper, DelayAddsToTheDeparture) {
  Shaper s({.rate_bps = k8Mbit, .burst_bytes = 1000, .delay = 20ms});
  EXPECT_EQ(s.release(0ns, 1000), 20ms);
  EXPECT_EQ(s.release(0ns, 1000), 21ms);
  Shaper unlimited({.delay = 5ms});
  EXPECT_EQ(unlimited.release(3ms, 1 << 30), 8ms);
  EXPECT_TRUE(Shaper().unshaped());
  EXPECT_FALSE(unlimited.unshaped());
}

TEST(NetemShaper, JitterIsBoundedReproducibleAndNeverReorders) {
  const LinkProfile p{.delay = 10ms, .jitter = 5ms};
  Shaper a(p, 7), b(p, 7);
  Nanos prev{0}, lo = Nanos::max(), hi{0};
  for (int i = 0; i < 10000; ++i) {
    // Spaced wider than the jitter, so the no-reordering rule never holds a chunk back here.
    const Nanos arrival = i * 20ms, r = a.release(arrival, 100);
    EXPECT_EQ(r, b.release(arrival, 100));
    EXPECT_GE(r, prev);  // monotonic: bytes keep their order
    EXPECT_GE(r - arrival, 5ms);
    EXPECT_LE(r - arrival, 15ms);
    lo = std::min(lo, r - arrival);
    hi = std::max(hi, r - arrival);
    prev = r;
  }
  EXPECT_LT(lo, 5100us);  // the whole jitter range is used
  EXPECT_GT(hi, 14900us);
  // Chunks closer than the jitter: releases still never go back in time.
  Shaper c(p, 7);
  prev = 0ns;
  for (int i = 0; i < 1000; ++i) {
    const Nanos r = c.release(i * 100us, 100);
    EXPECT_GE(r, prev);
    prev = r;
  }
}

TEST(NetemShaper, NothingFlowsInAStall) {
  Shaper s({.rate_bps = k8Mbit, .burst_bytes = 1000});
  s.add_stall({10ms, 20ms});
  EXPECT_EQ(s.release(9ms, 1000), 9ms);
  EXPECT_EQ(s.release(9ms, 1000), 20ms);  // departs at 10 ms, released when the stall ends
  EXPECT_EQ(s.release(9ms, 1000), 21ms);  // no tokens accrue during the stall
  EXPECT_EQ(s.release(30ms, 1000), 30ms);
  EXPECT_THROW(s.add_stall({5ms, 5ms}), std::invalid_argument);
}

TEST(NetemShaper, FollowsATrace) {
  Shaper s({.rate_bps = k8Mbit, .burst_bytes = 1000});
  s.set_trace({{.at = 100ms, .rate_bps = 2 * k8Mbit, .delay = 5ms}});
  std::vector<Nanos> r;
  for (int k = 0; k < 103; ++k) r.push_back(s.release(0ns, 1000));
  EXPECT_EQ(r[99], 99ms);
  EXPECT_EQ(r[100], 105ms);  // departs at 100 ms under the new point's delay
  EXPECT_EQ(r[101], 105500us);
  EXPECT_EQ(r[102], 106ms);
  EXPECT_THROW(s.set_trace({{.at = 2ms}, {.at = 1ms}}), std::invalid_argument);
  EXPECT_THROW(s.set_trace({{.at = 2ms, .rate_bps = 0}}), std::invalid_argument);
}

TEST(NetemShaper, ProfileChangesApplyFromNow) {
  Shaper s({.rate_bps = k8Mbit, .burst_bytes = 1000});
  EXPECT_EQ(s.release(0ns, 1000), 0ns);
  s.set_profile(500us, {.rate_bps = 4 * k8Mbit, .burst_bytes = 1000});  // 500 B accrued at the old rate
  EXPECT_EQ(s.release(500us, 1000), 625us);
  EXPECT_THROW(s.set_profile(1ms, {.rate_bps = -1}), std::invalid_argument);
}

// --- the relay over real TCP ---

// Polls `done` for up to 5 s: the relay's handlers run on its own thread, slightly after the peer sees
// the bytes they wrote.
template <class F>
bool eventually(F done) {
  for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(10ms);
  return done();
}

bool wait_received(const ProbeServer& s, uint64_t bytes) {
  return eventually([&] { return s.received() >= bytes; });
}

struct RelayFixture : ::testing::Test {
  ProbeServer server;
  Relay relay;
  LinkId add(const LinkShape& shape = {}) {
    return relay.add_link(
        {.listen = {"127.0.0.1", 0}, .target = {"127.0.0.1", server.port()}, .shape = shape});
  }
};

class NetemGoodput : public RelayFixture, public ::testing::WithParamInterface<double> {};

TEST_P(NetemGoodput, WithinFivePercentOfTheSetting) {
  const double rate = GetParam();
  const LinkId id = add();
  relay.set_profile(id, Direction::up, {.rate_bps = rate});  // runtime change of an unshaped link
  const uint64_t bytes = uint64_t(rate / 8 * 1.5);
  const double s = timed_transfer(relay.port(id), bytes, false);
  const double goodput = double(bytes) * 8 / s;
  EXPECT_NEAR(goodput / rate, 1.0, 0.05)
      << "goodput " << format_rate(goodput) << " for " << format_rate(rate);
  EXPECT_TRUE(eventually([&] { return relay.stats(id).down.bytes == 1; }));        // the sink's verdict
  EXPECT_TRUE(eventually([&] { return relay.stats(id).up.bytes == bytes + 1; }));  // + the mode byte
  EXPECT_EQ(relay.stats(id).accepted, 1u);
}

INSTANTIATE_TEST_SUITE_P(Rates, NetemGoodput, ::testing::Values(1e6, 1e7, 1e8));

class NetemDelay : public RelayFixture, public ::testing::WithParamInterface<int> {};

TEST_P(NetemDelay, AddsTheOneWayDelay) {
  const Nanos delay = std::chrono::milliseconds(GetParam());
  const int rounds = delay >= 100ms ? 5 : 15;
  const Nanos base = median_round_trip(relay.port(add()), rounds);
  const Nanos shaped = median_round_trip(relay.port(add({.up = {.delay = delay}, .down = {}})), rounds);
  const double added_ms = std::chrono::duration<double, std::milli>(shaped - base).count();
  const double want_ms = std::chrono::duration<double, std::milli>(delay).count();
  EXPECT_NEAR(added_ms, want_ms, std::max(1.0, 0.05 * want_ms));
}

INSTANTIATE_TEST_SUITE_P(Delays, NetemDelay, ::testing::Values(5, 50, 200));

TEST_F(RelayFixture, JitterNeverReordersBytes) {
  const LinkProfile p{.rate_bps = 50e6, .delay = 2ms, .jitter = 2ms};
  const LinkId id = add({.up = p, .down = p});
  EXPECT_NO_THROW(timed_transfer(relay.port(id), 4 << 20, true));  // the sink checks every byte
}

TEST_F(RelayFixture, UnshapedRelayIsTransparent) {
  const LinkId id = add();
  EXPECT_NO_THROW(timed_transfer(relay.port(id), 64 << 20, true));
  EXPECT_TRUE(eventually([&] { return relay.stats(id).up.bytes == (64u << 20) + 1; }));
}

TEST_F(RelayFixture, BlackholeHoldsTrafficAndHealRestoresIt) {
  const LinkId id = add();
  ProbeClient c(relay.port(id), 'V');
  c.send_pattern(100000);
  ASSERT_TRUE(wait_received(server, 100000));
  relay.partition(id, PartitionMode::blackhole);
  EXPECT_TRUE(relay.stats(id).partitioned);
  c.send_pattern(100000);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(server.received(), 100000u);  // nothing arrives during the partition
  relay.heal(id);
  EXPECT_TRUE(wait_received(server, 200000));
  EXPECT_NO_THROW(c.finish());  // same connection, every byte in order
}

TEST_F(RelayFixture, ResetPartitionClosesConnections) {
  const LinkId id = add();
  ProbeClient c(relay.port(id), 'S', 2s);
  c.send_pattern(1000);
  ASSERT_TRUE(wait_received(server, 1000));
  relay.partition(id, PartitionMode::reset);
  EXPECT_THROW(c.finish(), std::runtime_error);
  EXPECT_THROW(timed_transfer(relay.port(id), 1000, false, 2s),
               std::runtime_error);  // refused while partitioned
  relay.heal(id);
  EXPECT_NO_THROW(timed_transfer(relay.port(id), 1000, false));
  EXPECT_TRUE(eventually([&] { return relay.stats(id).connections == 0; }));
}

TEST_F(RelayFixture, FollowsATraceMidTransfer) {
  // 4 Mbit/s for the link's first second, then 40 Mbit/s: 0.5 MB take about 1 s, the next 2.5 MB 0.5 s.
  const LinkId id = add({.up = {.rate_bps = 4e6}, .down = {}});
  relay.set_trace(id, Direction::up, {{.at = 1s, .rate_bps = 40e6}});
  const double s = timed_transfer(relay.port(id), 3'000'000, false);
  EXPECT_NEAR(s, 1.5, 0.075);
}

TEST_F(RelayFixture, AQuietConnectionIsServedWhileAnotherSaturatesTheLink) {
  // A bulk transfer keeps the 8 Mbit/s lane full. A round trip on a second connection through the same
  // link must wait only for the lane's queue (~60 KB, tens of ms), not for the bulk transfer to end.
  const LinkId id = add({.up = {.rate_bps = 8e6}, .down = {}});
  std::jthread bulk([port = relay.port(id)] {
    try {
      timed_transfer(port, 3'000'000, false);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "bulk transfer: " << e.what();
    }
  });
  bool saturated = false;  // the queue drains between reads: remember having seen it full
  eventually([&] { return saturated = saturated || relay.stats(id).up.queued > 0; });
  ASSERT_TRUE(saturated);
  std::this_thread::sleep_for(200ms);
  ProbeClient quiet(relay.port(id), 'E', 2s);
  for (int i = 0; i < 3; ++i) EXPECT_LT(quiet.ping(), 1s) << "round trip " << i;  // throws after 2 s
  EXPECT_LT(server.received(), 3'000'000u);  // the bulk transfer was still under way
}

// Runs one transfer of `bytes` per port at once; returns each one's seconds.
std::vector<double> concurrent_transfers(const std::vector<uint16_t>& ports, uint64_t bytes) {
  std::vector<double> seconds(ports.size(), 0);
  {
    std::vector<std::jthread> flows;
    for (size_t i = 0; i < ports.size(); ++i) {
      flows.emplace_back([&, i] {
        try {
          seconds[i] = timed_transfer(ports[i], bytes, true);
        } catch (const std::exception& e) {
          ADD_FAILURE() << "flow " << i << ": " << e.what();
        }
      });
    }
  }
  return seconds;
}

TEST_F(RelayFixture, TwoFlowsShareAnUplink) {
  // Two peers of one site send to two peers elsewhere: each pair's own link is unshaped, but both
  // cross the site's 8 Mbit/s uplink. Together they get the uplink, each about half of it, and a
  // round trip on a third link crossing the same uplink is not starved.
  constexpr double kCap = 8e6;
  const SharedId uplink = relay.add_shared({.rate_bps = kCap});
  std::vector<uint16_t> ports;
  for (int i = 0; i < 3; ++i) {
    ports.push_back(relay.port(relay.add_link({.listen = {"127.0.0.1", 0},
                                               .target = {"127.0.0.1", server.port()},
                                               .shape = {},
                                               .up_via = {uplink}})));
  }
  constexpr uint64_t kBytes = 1'500'000;  // 1.5 s alone, 3 s together
  std::jthread quiet([port = ports[2]] {
    std::this_thread::sleep_for(1s);
    ProbeClient c(port, 'E', 2s);
    for (int i = 0; i < 3; ++i) EXPECT_LT(c.ping(), 500ms) << "round trip " << i;
  });
  const std::vector<double> s = concurrent_transfers({ports[0], ports[1]}, kBytes);
  const double slow = std::max(s[0], s[1]), fast = std::min(s[0], s[1]);
  const double aggregate = 2.0 * kBytes * 8 / slow;
  EXPECT_GT(aggregate, 0.6 * kCap) << format_rate(aggregate);
  EXPECT_LT(aggregate, 1.15 * kCap) << format_rate(aggregate);
  // First come, all taken would finish one flow in half the other's time; sharing finishes both late.
  EXPECT_GT(fast / slow, 0.75) << fast << " s and " << slow << " s";
  EXPECT_GE(relay.shared_stats(uplink).bytes, 2 * kBytes);
}

TEST_F(RelayFixture, SitesDownlinkCapsWhatComesIn) {
  // Two sites with 40 Mbit/s uplinks send into one site whose downlink has 8 Mbit/s and 30 ms: the
  // downlink is the bottleneck of both flows, and its delay adds to the path's.
  constexpr double kCap = 8e6;
  const SharedId down = relay.add_shared({.rate_bps = kCap, .delay = 30ms});
  std::vector<uint16_t> ports;
  for (int i = 0; i < 2; ++i) {
    const SharedId up = relay.add_shared({.rate_bps = 40e6});
    ports.push_back(relay.port(relay.add_link({.listen = {"127.0.0.1", 0},
                                               .target = {"127.0.0.1", server.port()},
                                               .shape = {},
                                               .up_via = {up, down}})));
  }
  const std::vector<double> s = concurrent_transfers(ports, 1'000'000);
  const double aggregate = 2.0 * 1'000'000 * 8 / std::max(s[0], s[1]);
  EXPECT_GT(aggregate, 0.6 * kCap) << format_rate(aggregate);
  EXPECT_LT(aggregate, 1.15 * kCap) << format_rate(aggregate);
  const Nanos base = median_round_trip(relay.port(add()), 5);
  const Nanos shaped = median_round_trip(ports[0], 5);
  const double added_ms = std::chrono::duration<double, std::milli>(shaped - base).count();
  EXPECT_NEAR(added_ms, 30.0, 3.0);
  relay.set_shared_profile(down, {.rate_bps = kCap, .delay = 0ms});
  EXPECT_LT(median_round_trip(ports[0], 5) - base, 3ms);
}

// The relay port peer `dialer`'s k-th --dial-via goes through (routes to the other peers in order).
uint16_t via_port(const LinkEmulator& net, size_t dialer, size_t k) {
  const std::string flag = net.peer_flags(dialer).at(2 * k + 1);
  return uint16_t(std::stoi(flag.substr(flag.rfind(':') + 1)));
}

TEST_F(RelayFixture, ScenarioSitesUplinkIsSharedByItsPeers) {
  // Site a's two peers send to site b's two at once through the runner's wiring: a's 8 Mbit/s uplink
  // carries both; inside a, nothing crosses it; set_site changes it.
  const Scenario s = parse_scenario(R"(
name = "t"
duration = "1min"
[[site]]
name = "a"
peers = 2
uplink = "8mbit"
[[site]]
name = "b"
peers = 2
)");
  const auto net = make_relay_emulator(layout_routes(s), std::vector<uint16_t>(4, server.port()), s.sites);
  // a-0's routes: a-1, b-0, b-1; a-1's: a-0, b-0, b-1.
  std::vector<double> t = concurrent_transfers({via_port(*net, 0, 1), via_port(*net, 1, 2)}, 1'000'000);
  EXPECT_GT(std::max(t[0], t[1]), 2.0 * 0.85);  // 2 MB at 8 Mbit/s: 2 s
  EXPECT_LT(timed_transfer(via_port(*net, 0, 0), 1'000'000, false), 0.5);
  EXPECT_LT(timed_transfer(via_port(*net, 2, 0), 1'000'000, false), 0.5);  // b -> a: no uplink of b
  net->set_site(0, Direction::up, {.rate_bps = 80e6});
  t = concurrent_transfers({via_port(*net, 0, 1), via_port(*net, 1, 2)}, 1'000'000);
  EXPECT_LT(std::max(t[0], t[1]), 0.5);
  EXPECT_THROW(net->set_site(1, Direction::up, {.rate_bps = 1e6}), std::invalid_argument);
}

TEST_F(RelayFixture, BadControlCallsThrow) {
  EXPECT_THROW(relay.add_shared({.rate_bps = 1e6, .jitter = 1ms}), std::invalid_argument);
  EXPECT_THROW(relay.add_shared({.rate_bps = 0}), std::invalid_argument);
  EXPECT_THROW(
      relay.add_link({.listen = {"127.0.0.1", 0}, .target = {"127.0.0.1", 1}, .shape = {}, .up_via = {99}}),
      std::invalid_argument);
  EXPECT_THROW(relay.shared_stats(99), std::invalid_argument);
  EXPECT_THROW(relay.stats(12345), std::invalid_argument);
  EXPECT_THROW(relay.add_link({.listen = {"127.0.0.1", 0},
                               .target = {"127.0.0.1", 1},
                               .shape = {.up = {.rate_bps = 0}, .down = {}}}),
               std::invalid_argument);
  const LinkId id = add();
  EXPECT_THROW(
      relay.add_link({.listen = {"127.0.0.1", relay.port(id)}, .target = {"127.0.0.1", 1}, .shape = {}}),
      std::runtime_error);
}

}  // namespace
}  // namespace murmur::netem

// Keys on disk, the allow-list, and the CurveZMQ transport over real sockets on
// 127.0.0.1: control messages, an idle poll that sleeps rather than spins, a 50 MB chunked payload overtaken
// by a probe (and the probe handed over before the rest of the payload is read), strangers refused (with the
// ZAP handler, and fail-closed without one), oversize, malformed and spoofed frames dropped and counted,
// reassembly bounded per sender, in total and in time, and payloads on links that are not up never
// reassembled.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <random>
#include <thread>
#include <zmq.hpp>

#include "gossip/peer_id.h"
#include "gossip/wire.h"
#include "node/net/keys.h"
#include "node/net/large_buffers.h"
#include "node/net/transport.h"
#include "tests/test_util.h"

namespace murmur::net {
namespace {

namespace g = murmur::gossip;
using gossip::wire::encode;
using namespace std::chrono_literals;

TEST(Keys, WriteLoadAndRefuseToOverwrite) {
  test::TempDir dir;
  const Keys k = generate_keys();
  write_keys(dir / "k", k);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "k" / "peer.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const Keys back = load_keys(dir / "k");
  EXPECT_EQ(back.public_z85, k.public_z85);
  EXPECT_EQ(back.secret_z85, k.secret_z85);
  EXPECT_EQ(back.id, k.id);
  EXPECT_THROW(write_keys(dir / "k", generate_keys()), std::runtime_error);
  EXPECT_EQ(load_keys(dir / "k").public_z85, k.public_z85);  // untouched
  // A public key that is not the secret key's.
  std::filesystem::remove(dir / "k" / "peer.pub");
  std::ofstream(dir / "k" / "peer.pub") << generate_keys().public_z85 << "\n";
  EXPECT_THROW(load_keys(dir / "k"), std::runtime_error);
  EXPECT_THROW(load_keys(dir / "missing"), std::runtime_error);
}

// A key whose Z85 text holds `c` (Z85 uses '#', '@' and ':').
Keys key_containing(char c) {
  for (;;) {
    Keys k = generate_keys();
    if (k.public_z85.find(c) != std::string::npos) return k;
  }
}

TEST(Keys, AllowListParsesAndNamesTheBadLine) {
  const Keys a = key_containing('#'), b = generate_keys();
  const auto keys =
      parse_allow_list("# swarm\n\n" + a.public_z85 + "  # first\n  " + b.public_z85 + "\n", "f");
  EXPECT_EQ(keys, (std::set<g::PeerId>{a.id, b.id}));
  try {
    parse_allow_list(a.public_z85 + "\n#\nnot-a-key\n", "allow.txt");
    FAIL() << "accepted a malformed line";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("allow.txt:3:"), std::string::npos) << e.what();
  }
}

TEST(Transport, JoinAddress) {
  const Keys k = key_containing('@');
  const g::PeerInfo p = parse_join_address(k.public_z85 + "@127.0.0.1:7000");
  EXPECT_EQ(p.id, k.id);
  EXPECT_EQ(p.addr, "tcp://127.0.0.1:7000");
  for (const std::string& bad : std::vector<std::string>{
           "127.0.0.1:7000", "abc@127.0.0.1:7000", k.public_z85 + "@127.0.0.1", k.public_z85 + "@:7000",
           k.public_z85 + "@h:0", k.public_z85 + "@h:70000", k.public_z85 + "@h:7x"}) {
    EXPECT_THROW(parse_join_address(bad), std::invalid_argument) << bad;
  }
}

TransportConfig config_for(const Keys& k, std::set<g::PeerId> allowed) {
  TransportConfig c;
  c.keys = k;
  c.admission.allowed = std::move(allowed);
  c.linger_ms = 0;
  return c;
}

g::PeerInfo info(const Transport& t) { return {t.id(), t.endpoint(), 0}; }

// Drives several transports from this one thread until `done` or a deadline.
template <class Done>
std::vector<Incoming> pump_until(std::vector<Transport*> ts, Transport& receiver, Done&& done,
                                 std::chrono::milliseconds limit = 10s) {
  std::vector<Incoming> got;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done(got) && std::chrono::steady_clock::now() < deadline) {
    for (Transport* t : ts) {
      auto in = t->poll(1ms);
      if (t == &receiver) std::move(in.begin(), in.end(), std::back_inserter(got));
    }
  }
  return got;
}

struct Pair {
  Keys ka = generate_keys(), kb = generate_keys();
  Transport a{config_for(ka, {kb.id})}, b{config_for(kb, {ka.id})};
};

TEST(Transport, ControlMessagesBothWays) {
  Pair p;
  EXPECT_NE(p.b.endpoint().find("tcp://127.0.0.1:"), std::string::npos);
  // A joins B through B's join address; B answers on A's advertised address.
  p.a.send_to_addr(p.kb.public_z85 + "@" + p.b.endpoint().substr(6), g::Hello{info(p.a)});
  auto got = pump_until({&p.a, &p.b}, p.b, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].from, p.ka.id);
  EXPECT_EQ(got[0].msg, g::Message(g::Hello{info(p.a)}));
  p.b.send(info(p.a), g::Welcome{info(p.b), {info(p.a)}});
  p.b.send(info(p.a), g::Ping{5, {}});
  got = pump_until({&p.a, &p.b}, p.a, [](auto& v) { return v.size() == 2; });
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].from, p.kb.id);
  EXPECT_EQ(got[1].msg, g::Message(g::Ping{5, {}}));
  EXPECT_EQ(p.b.counters().peers.at(p.ka.id).messages_in, 1u);
  EXPECT_GT(p.a.counters().total.bytes_in, 0u);
}

// A is outbound-only: B never dials it. B answers over A's own connections (its routes), control and
// payload alike; what it sends before A connected waits for the connection.
TEST(Transport, AnOutboundOnlyPeerIsAnsweredOverTheConnectionsItOpened) {
  Keys ka = generate_keys(), kb = generate_keys();
  TransportConfig ca = config_for(ka, {kb.id});
  ca.eager_bulk = true;
  ca.listen = "tcp://127.0.0.1:0";
  Transport a(ca), b(config_for(kb, {ka.id}));
  const g::PeerInfo a_routed{ka.id, "", 0};  // as B knows it: no address
  b.send(a_routed, g::Ping{1, {}});
  for (int i = 0; i < 20; ++i) b.poll(1ms);
  EXPECT_EQ(b.counters().total.messages_out, 0u);
  a.send(info(b), g::Hello{a_routed});
  auto got = pump_until({&a, &b}, b, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].observed, "127.0.0.1");  // the address its connection came from
  std::vector<uint8_t> big(3'000'000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 7);
  b.send(a_routed, g::Welcome{info(b), {}});
  ASSERT_TRUE(b.send_payload(a_routed, 4, 0, big));
  got = pump_until({&a, &b}, a, [](auto& v) { return v.size() == 3; });
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].from, kb.id);
  EXPECT_EQ(got[0].msg, g::Message(g::Ping{1, {}}));  // it waited for A's connection
  EXPECT_TRUE(std::holds_alternative<g::Welcome>(got[1].msg));
  const auto* payload = std::get_if<g::Payload>(&got[2].msg);
  ASSERT_NE(payload, nullptr);
  EXPECT_TRUE(payload->bytes == big);
  // A becomes dialable: B keeps answering over A's connection while it lasts (one ordered path), so
  // A's ROUTER never sees a connection.
  b.send(info(a), g::Ping{3, {}});
  got = pump_until({&a, &b}, a, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].msg, g::Message(g::Ping{3, {}}));
  EXPECT_EQ(a.counters().zap_admitted, 0u);
}

// A dial-back goes on a connection of its own: it arrives on the ROUTER at the address dialled, and it
// does not take over the sender's route at the receiver.
TEST(Transport, ADialBackArrivesOnAConnectionOfItsOwn) {
  Pair p;
  p.b.dial_back(info(p.a), g::Reachable{p.a.endpoint()});
  auto got = pump_until({&p.a, &p.b}, p.a, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].from, p.kb.id);
  EXPECT_EQ(got[0].msg, g::Message(g::Reachable{p.a.endpoint()}));
  EXPECT_EQ(p.b.counters().dial_backs, 1u);
  // A cannot answer B over that connection: B is not a route of A's until B's own DEALER speaks.
  p.a.send({p.kb.id, "", 0}, g::Ping{2, {}});
  EXPECT_TRUE(pump_until(
                  {&p.a, &p.b}, p.b, [](auto& v) { return !v.empty(); }, 200ms)
                  .empty());
  // A closed dial-back costs nothing: an unreachable address is simply never answered.
  p.b.dial_back({p.ka.id, "tcp://127.0.0.1:1", 0}, g::Reachable{"tcp://127.0.0.1:1"});
  for (int i = 0; i < 50; ++i) p.b.poll(1ms);
  EXPECT_EQ(p.b.counters().dial_backs, 2u);
}

// A DEALER that names another peer's key in its routing id is refused, and that peer's route is not
// used again until the peer itself speaks on it.
TEST(Transport, ARoutingIdNamingAnotherKeyIsRefused) {
  Keys ka = generate_keys(), kb = generate_keys(), kx = generate_keys();
  Transport a(config_for(ka, {kb.id, kx.id})), b(config_for(kb, {ka.id, kx.id}));
  zmq::context_t ctx;
  zmq::socket_t x(ctx, zmq::socket_type::dealer);
  configure_curve_client(x, kx, ka.id);
  x.set(zmq::sockopt::linger, 0);
  x.set(zmq::sockopt::routing_id, route_id(kb.id, 'c'));  // claims to be B's control connection
  x.connect(a.endpoint());
  const auto ping = encode(g::Message(g::Ping{7, {}}));
  x.send(zmq::buffer(ping));
  pump_until({&a}, a, [&](auto&) { return a.counters().total.rejected.count("route_claim") > 0; });
  EXPECT_EQ(a.counters().total.rejected.at("route_claim"), 1u);
  a.send({kb.id, "", 0}, g::Ping{8, {}});  // no route to B: X's connection is not it, the Ping waits
  for (int i = 0; i < 50; ++i) a.poll(1ms);
  EXPECT_EQ(a.counters().total.messages_out, 0u);
  zmq::message_t none;
  EXPECT_FALSE(x.recv(none, zmq::recv_flags::dontwait));
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// An idle poll sleeps in the kernel. It used to round its remaining time down to whole
// milliseconds, so every poll spun through its last millisecond: poll(1ms) was a busy loop.
TEST(Transport, IdlePollSleepsInsteadOfSpinning) {
  Pair p;
  p.a.send(info(p.b), g::Ping{1, {}});
  ASSERT_EQ(pump_until({&p.a, &p.b}, p.b, [](auto& v) { return !v.empty(); }).size(), 1u);
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = thread_cpu_seconds();
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(p.a.poll(2ms).empty());
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(wall, 0.2);
  EXPECT_LT(thread_cpu_seconds() - cpu0, wall / 4) << "an idle poll burns CPU";
}

TEST(Transport, FiftyMegabytePayloadWithAProbeOvertakingIt) {
  Pair p;
  std::vector<uint8_t> big(50'000'000);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < big.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(big.data() + i, &v, std::min<size_t>(8, big.size() - i));
  }
  ASSERT_TRUE(p.a.send_payload(info(p.b), 3, 7, big));
  // Once a few MB are across (both connections' handshakes done), B stops reading for a while, so
  // chunks pile up in its queues; then a probe.
  pump_until({&p.a, &p.b}, p.b, [&](auto&) { return p.b.counters().total.bytes_in > 4'000'000; });
  ASSERT_GT(p.b.counters().total.bytes_in, 4'000'000u);
  for (int i = 0; i < 200; ++i) p.a.poll(1ms);
  p.a.send(info(p.b), g::Ping{99, {}});
  for (int i = 0; i < 20; ++i) p.a.poll(1ms);
  // B hands the probe over without first reading the chunks queued beside it.
  const uint64_t before = p.b.counters().total.bytes_in;
  auto got = pump_until({&p.b}, p.b, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].msg, g::Message(g::Ping{99, {}}));
  EXPECT_LT(p.b.counters().total.bytes_in - before, 8u << 20);
  got = pump_until(
      {&p.a, &p.b}, p.b, [](auto& v) { return !v.empty(); }, 60s);
  ASSERT_EQ(got.size(), 1u);
  const auto* payload = std::get_if<g::Payload>(&got[0].msg);
  ASSERT_NE(payload, nullptr);
  EXPECT_EQ(payload->link_epoch, 3u);
  EXPECT_EQ(payload->seq, 7u);
  EXPECT_EQ(payload->chunk_count, 1u);
  EXPECT_TRUE(payload->bytes == big);
  EXPECT_EQ(p.a.queued_payloads(p.kb.id), 0u);
  EXPECT_TRUE(p.b.counters().total.rejected.empty());
}

TEST(BufferReaper, FreesWhatItIsGivenOnItsThreadAndStopsCleanly) {
  std::vector<std::vector<uint8_t>> buffers;
  for (size_t n : {size_t(100), size_t(4) << 20, size_t(8) << 20}) buffers.emplace_back(n, uint8_t(1));
  advise_huge_pages(buffers[2].data(), buffers[2].size());  // advice: the contents stay as they are
  EXPECT_EQ(buffers[2][(6u << 20) + 3], 1);
  {
    BufferReaper reaper;
    for (auto& b : buffers) {
      reaper.release(std::move(b));
      EXPECT_EQ(b.capacity(), 0u);  // handed over (or, for the small one, freed in place)
    }
  }  // joins, freeing what is still queued: LeakSanitizer checks it under ASan
}

TEST(Transport, StrangerIsRefusedByTheZapHandler) {
  Pair p;
  const Keys kc = generate_keys();
  Transport c(config_for(kc, {p.kb.id}));
  c.send(info(p.b), g::Hello{info(c)});
  p.a.send(info(p.b), g::Bye{1});
  auto got =
      pump_until({&p.a, &p.b, &c}, p.b, [&](auto& v) { return !v.empty() && p.b.counters().zap_denied > 0; });
  pump_until(
      {&p.a, &p.b, &c}, p.b, [](auto&) { return false; }, 300ms);  // give C time to retry
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].from, p.ka.id);
  EXPECT_GE(p.b.counters().zap_denied, 1u);
  EXPECT_EQ(p.b.counters().peers.count(kc.id), 0u);
}

// A CURVE ROUTER set up as the transport's, in a context where no ZAP handler
// runs, refuses every client; the same ROUTER without the enforced domain admits
// a stranger (why the option matters).
TEST(Transport, FailsClosedWithoutZapHandler) {
  const Keys server = generate_keys(), client = generate_keys();
  for (const bool enforce : {true, false}) {
    zmq::context_t ctx;
    zmq::socket_t router(ctx, zmq::socket_type::router), dealer(ctx, zmq::socket_type::dealer);
    router.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::linger, 0);
    if (enforce) {
      configure_curve_server(router, server);
    } else {
      router.set(zmq::sockopt::curve_server, 1);
      router.set(zmq::sockopt::curve_secretkey, server.secret_z85);
    }
    router.bind("tcp://127.0.0.1:*");
    configure_curve_client(dealer, client, server.id);
    dealer.connect(router.get(zmq::sockopt::last_endpoint));
    dealer.send(zmq::str_buffer("hello"), zmq::send_flags::none);
    router.set(zmq::sockopt::rcvtimeo, enforce ? 700 : 5000);
    zmq::message_t id;
    EXPECT_EQ(router.recv(id).has_value(), !enforce) << (enforce ? "enforced domain admitted a client" : "");
  }
}

// Counts a socket's completed CURVE handshakes, so a test sends only on a live connection (a frame
// sent while the old connection is being torn down is lost, whatever the load).
class HandshakeCounter : public zmq::monitor_t {
 public:
  std::atomic<int> handshakes{0};  // read by the thread that pumps the transport meanwhile
  void on_event_handshake_succeeded(const zmq_event_t&, const char*) override { ++handshakes; }
  bool wait_for(int n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (handshakes < n && std::chrono::steady_clock::now() < deadline) check_event(100);
    return handshakes >= n;
  }
};

TEST(Transport, OversizeMalformedAndSpoofedFramesAreDroppedAndCounted) {
  Pair p;
  zmq::context_t ctx;
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);  // holds A's valid key
  raw.set(zmq::sockopt::linger, 0);
  configure_curve_client(raw, p.ka, p.kb.id);
  HandshakeCounter monitor;
  monitor.init(raw, "inproc://raw-monitor", ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  raw.connect(p.b.endpoint());
  std::vector<uint8_t> huge(kMaxFrameBytes + 1, 0x90);
  raw.send(zmq::buffer(huge), zmq::send_flags::none);
  auto got = pump_until({&p.b}, p.b, [&](auto&) { return p.b.counters().disconnects > 0; });
  EXPECT_TRUE(got.empty());
  EXPECT_GE(p.b.counters().disconnects, 1u);
  // The raw socket reconnects (a second handshake); garbage and a Hello claiming another key are dropped.
  std::thread serve([&] { pump_until({&p.b}, p.b, [&](auto&) { return monitor.handshakes >= 2; }); });
  const bool reconnected = monitor.wait_for(2);
  serve.join();
  ASSERT_TRUE(reconnected) << "the raw socket did not reconnect";
  raw.send(zmq::str_buffer("\xdd\xff\xff\xff\xff"), zmq::send_flags::none);
  const auto spoof = encode(g::Hello{{p.kb.id, "tcp://127.0.0.1:1", 0}});
  raw.send(zmq::buffer(spoof), zmq::send_flags::none);
  const auto bad_chunk = encode(g::Payload{1, 1, 5, 9, {1, 2}});  // chunk 5 without 0..4
  raw.send(zmq::buffer(bad_chunk), zmq::send_flags::none);
  // 100,000 chunks of 16 KiB would pass the 1 GiB payload bound: refused before any memory is taken.
  const auto too_many = encode(g::Payload{1, 2, 0, 100'000, std::vector<uint8_t>(16 << 10, 1)});
  raw.send(zmq::buffer(too_many), zmq::send_flags::none);
  // A later chunk larger than the first (whose size reserved the buffer).
  for (const auto& frame :
       {encode(g::Payload{1, 3, 0, 3, {1, 2}}), encode(g::Payload{1, 3, 1, 3, {1, 2, 3, 4, 5}})})
    raw.send(zmq::buffer(frame), zmq::send_flags::none);
  const auto& rej = p.b.counters().total.rejected;
  const auto count = [&](const char* r) { return rej.count(r) ? rej.at(r) : 0; };
  got = pump_until({&p.b}, p.b, [&](auto&) {
    return count("malformed") + count("spoofed") + count("reassembly") + count("oversize") >= 5;
  });
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(count("malformed"), 1u);
  EXPECT_EQ(count("spoofed"), 1u);
  EXPECT_EQ(count("reassembly"), 2u);
  EXPECT_EQ(count("oversize"), 1u);
  EXPECT_EQ(p.b.counters().peers.at(p.ka.id).rejected.at("malformed"), 1u);
  // The transport keeps working.
  p.a.send(info(p.b), g::Bye{2});
  got = pump_until({&p.a, &p.b}, p.b, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].msg, g::Message(g::Bye{2}));
}

// A DEALER holding an admitted key that writes payload chunks as a hostile peer would: starting
// payloads it never finishes, claiming sizes it never sends.
struct RawSender {
  zmq::context_t ctx;
  zmq::socket_t s{ctx, zmq::socket_type::dealer};
  RawSender(const Keys& k, const Transport& to) {
    s.set(zmq::sockopt::linger, 0);
    configure_curve_client(s, k, to.id());
    s.connect(to.endpoint());
  }
  // Chunk `i` of `n` of payload (epoch, seq), 16 KiB.
  void chunk(uint64_t epoch, uint64_t seq, uint32_t i, uint32_t n) {
    s.send(zmq::buffer(encode(g::Payload{epoch, seq, i, n, std::vector<uint8_t>(kChunk, uint8_t(i))})),
           zmq::send_flags::none);
  }
  static constexpr size_t kChunk = 16 << 10;
};

// A receiver admitting `senders`, holding one 4-chunk payload per sender and two in all.
TransportConfig small_reassembly(const std::vector<Keys>& senders, std::chrono::milliseconds timeout) {
  std::set<g::PeerId> allowed;
  for (const Keys& k : senders) allowed.insert(k.id);
  TransportConfig c = config_for(generate_keys(), allowed);
  c.max_payload_bytes = 4 * RawSender::kChunk;
  c.max_reassembly_bytes = 2 * c.max_payload_bytes;
  c.reassembly_timeout = timeout;
  return c;
}

uint64_t rejected(const Transport& t, const char* reason) {
  const auto& r = t.counters().total.rejected;
  return r.count(reason) ? r.at(reason) : 0;
}

// Pumps `t` alone for `d`, returning what arrived.
std::vector<Incoming> idle(Transport& t, std::chrono::milliseconds d) {
  return pump_until(
      {&t}, t, [](auto&) { return false; }, d);
}

TEST(Transport, StalledPayloadTimesOutFromItsLastChunkAndIsFreed) {
  const Keys k = generate_keys();
  Transport b(small_reassembly({k}, 1000ms));
  RawSender raw(k, b);
  // A slow stream: 1.5 s for the payload, 0.5 s between chunks, is not cut off.
  for (uint32_t i = 0; i < 3; ++i) {
    raw.chunk(1, 0, i, 4);
    EXPECT_TRUE(idle(b, 500ms).empty());
  }
  raw.chunk(1, 0, 3, 4);
  auto got = pump_until({&b}, b, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(std::get<g::Payload>(got[0].msg).bytes.size(), 4 * RawSender::kChunk);
  EXPECT_EQ(b.reassembly_bytes(), 0u);
  // A payload that stops half-way is dropped once no chunk came for the timeout.
  raw.chunk(1, 1, 0, 4);
  raw.chunk(1, 1, 1, 4);
  pump_until({&b}, b, [&](auto&) { return b.reassembly_bytes() > 0; });
  EXPECT_EQ(b.reassembly_bytes(), 4 * RawSender::kChunk);
  const auto t0 = std::chrono::steady_clock::now();
  pump_until({&b}, b, [&](auto&) { return rejected(b, "timeout") > 0; });
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_EQ(rejected(b, "timeout"), 1u);
  EXPECT_EQ(b.reassembly_bytes(), 0u);
}

TEST(Transport, ReassemblyIsCappedPerSenderAndInTotal) {
  const std::vector<Keys> k = {generate_keys(), generate_keys(), generate_keys()};
  Transport b(small_reassembly(k, 60s));
  std::vector<std::unique_ptr<RawSender>> raw;
  for (const Keys& key : k) raw.push_back(std::make_unique<RawSender>(key, b));
  // Per sender: a payload beyond max_payload_bytes takes nothing; a new payload replaces the old one.
  raw[0]->chunk(1, 0, 0, 5);
  pump_until({&b}, b, [&](auto&) { return rejected(b, "oversize") > 0; });
  EXPECT_EQ(b.reassembly_bytes(), 0u);
  for (const uint64_t seq : {uint64_t{1}, uint64_t{2}}) {
    raw[0]->chunk(1, seq, 0, 4);
    pump_until({&b}, b, [&](auto&) { return b.counters().total.bytes_in >= (seq + 1) * RawSender::kChunk; });
    EXPECT_EQ(b.reassembly_bytes(), 4 * RawSender::kChunk);
  }
  EXPECT_EQ(rejected(b, "reassembly"), 1u);  // seq 1, abandoned
  // In total: two payloads fit, the third sender's is refused, every chunk of it unread.
  raw[1]->chunk(1, 0, 0, 4);
  pump_until({&b}, b, [&](auto&) { return b.reassembly_bytes() == 8 * RawSender::kChunk; });
  for (uint32_t i = 0; i < 4; ++i) raw[2]->chunk(1, 0, i, 4);
  pump_until({&b}, b, [&](auto&) { return rejected(b, "memory") == 4; });
  EXPECT_EQ(b.counters().peers.at(k[2].id).rejected.at("memory"), 4u);
  EXPECT_EQ(b.reassembly_bytes(), 8 * RawSender::kChunk);
  // Once the first sender's payload is through, the third has room.
  for (uint32_t i = 1; i < 4; ++i) raw[0]->chunk(1, 2, i, 4);
  auto got = pump_until({&b}, b, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].from, k[0].id);
  for (uint32_t i = 0; i < 4; ++i) raw[2]->chunk(1, 1, i, 4);
  got = pump_until({&b}, b, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].from, k[2].id);
  EXPECT_EQ(b.reassembly_bytes(), 4 * RawSender::kChunk);  // the second sender's, still partial
}

TEST(Transport, PayloadsOnALinkThatIsNotUpNeverAllocate) {
  const Keys k = generate_keys();
  Transport b(small_reassembly({k}, 60s));
  int asked = 0;
  b.set_payload_filter([&](const g::PeerId& from, uint64_t epoch) {
    ++asked;
    return from == k.id && epoch == 6;
  });
  RawSender raw(k, b);
  for (uint32_t i = 0; i < 4; ++i) raw.chunk(5, 0, i, 4);
  size_t most = 0;
  pump_until({&b}, b, [&](auto&) {
    most = std::max(most, b.reassembly_bytes());
    return rejected(b, "no_link") == 4;
  });
  EXPECT_EQ(rejected(b, "no_link"), 4u);
  EXPECT_EQ(most, 0u);
  EXPECT_EQ(asked, 1);  // once per payload, at its first chunk
  for (uint32_t i = 0; i < 4; ++i) raw.chunk(6, 0, i, 4);
  const auto got = pump_until({&b}, b, [](auto& v) { return !v.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(std::get<g::Payload>(got[0].msg).link_epoch, 6u);
  EXPECT_EQ(asked, 2);
}

TEST(Transport, ClearErrors) {
  Pair p;
  TransportConfig c = config_for(generate_keys(), {});
  c.listen = p.a.endpoint();
  EXPECT_THROW(Transport{c}, std::runtime_error);  // port in use
  c.listen = "tcp://no-such-interface-x:1";
  EXPECT_THROW(Transport{c}, std::runtime_error);
  c.listen = "tcp://127.0.0.1:0";
  c.chunk_bytes = g::kMaxChunkBytes + 1;
  EXPECT_THROW(Transport{c}, std::invalid_argument);
  c.chunk_bytes = 512u << 10;
  c.max_reassembly_bytes = c.max_payload_bytes - 1;
  EXPECT_THROW(Transport{c}, std::invalid_argument);
  c.max_reassembly_bytes = c.max_payload_bytes;
  c.reassembly_timeout = 0ms;
  EXPECT_THROW(Transport{c}, std::invalid_argument);
}

}  // namespace
}  // namespace murmur::net

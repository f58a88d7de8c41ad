// The relay service (node/net/relay_service.h) on loopback: plain TCP pairing, splicing, closing, waiting
// connections, idle expiry and the session limit; a CurveZMQ DEALER -> ROUTER session end to end through it,
// with recording proxies on both sides proving that the relay forwards the stream unmodified and that no
// plaintext crosses it; and the bandwidth cap (goodput near the cap, fair between sessions). Exact goodput
// ratios are in the benchmark (bench/relay_bench.cpp).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>
#include <zmq.hpp>

#include "node/net/keys.h"
#include "node/net/metrics.h"
#include "node/net/relay_service.h"
#include "node/net/zap.h"

namespace murmur::net {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int connect_to(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A blocking client connection to the relay.
class Conn {
 public:
  explicit Conn(uint16_t port) : fd_(connect_to(port)) {
    if (fd_ < 0) throw std::runtime_error("cannot connect to port " + std::to_string(port));
  }
  ~Conn() { close(); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void shutdown() { ::shutdown(fd_, SHUT_RDWR); }  // unblocks a send or recv in another thread
  int fd() const { return fd_; }

  bool send_all(const std::string& s) {
    for (size_t off = 0; off < s.size();) {
      const ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += size_t(n);
    }
    return true;
  }
  // Up to n bytes: fewer if the peer closes or nothing arrives for `quiet`.
  std::string recv_exact(size_t n, std::chrono::milliseconds quiet = 5s) {
    std::string out;
    std::vector<char> buf(64 << 10);
    while (out.size() < n) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, int(quiet.count())) <= 0) break;
      const ssize_t r = ::recv(fd_, buf.data(), std::min(buf.size(), n - out.size()), 0);
      if (r <= 0) break;
      out.append(buf.data(), size_t(r));
    }
    return out;
  }
  // True when the peer closes (EOF or reset) within `limit`, discarding what arrives meanwhile.
  bool closed_by_peer(std::chrono::milliseconds limit = 3s) {
    const auto deadline = Clock::now() + limit;
    char buf[4096];
    while (Clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      if (::recv(fd_, buf, sizeof buf, 0) <= 0) return true;
    }
    return false;
  }

 private:
  int fd_;
};

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = char(rng());
  return s;
}

template <class F>
bool eventually(F&& f, std::chrono::milliseconds limit = 3s) {
  const auto deadline = Clock::now() + limit;
  while (!f()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

RelayServiceConfig loopback(double bps = 0) {
  RelayServiceConfig c;
  c.bind_host = "127.0.0.1";
  c.bandwidth_bps = bps;
  return c;
}

TEST(RelayService, BytesPassBothWaysIntact) {
  RelayService relay(loopback());
  const RelaySessionPorts p = relay.open("a|b");
  EXPECT_TRUE(p.created);
  EXPECT_NE(p.caller_port, p.callee_port);
  Conn callee(p.callee_port);
  ASSERT_TRUE(callee.send_all("early"));  // before any caller: waits in the kernel
  ASSERT_TRUE(eventually([&] { return relay.stats().sessions.at(0).callee_waiting; }));
  Conn caller(p.caller_port);
  EXPECT_EQ(caller.recv_exact(5), "early");

  const std::string up = random_bytes(3 << 20, 1), down = random_bytes(2 << 20, 2);
  std::string got_down;
  std::thread send_up([&] { caller.send_all(up); });
  std::thread send_down([&] { callee.send_all(down); });
  std::thread recv_down([&] { got_down = caller.recv_exact(down.size()); });
  const std::string got_up = callee.recv_exact(up.size());
  send_up.join();
  send_down.join();
  recv_down.join();
  EXPECT_TRUE(got_up == up);
  EXPECT_TRUE(got_down == down);

  ASSERT_TRUE(eventually([&] { return relay.stats().callee_to_caller == 5 + down.size(); }));
  const RelayStats s = relay.stats();
  EXPECT_EQ(s.caller_to_callee, up.size());
  ASSERT_EQ(s.sessions.size(), 1u);
  EXPECT_EQ(s.sessions[0].key, "a|b");
  EXPECT_EQ(s.sessions[0].caller_to_callee, up.size());
  EXPECT_TRUE(s.sessions[0].paired);
  EXPECT_EQ(s.pairs, 1u);

  MetricsRegistry m;
  export_relay_stats(s, m);
  const std::string text = m.render();
  for (const std::string& line :
       {"murmur_relay_bytes_total{direction=\"caller_to_callee\"} " + std::to_string(up.size()),
        std::string("murmur_relay_pairs_total 1"),
        std::string("murmur_relay_sessions_total{event=\"opened\"} 1")})
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\n" << text;
}

TEST(RelayService, ClosingOneSideClosesTheOtherAndReconnectsPairAgain) {
  RelayService relay(loopback());
  const RelaySessionPorts p = relay.open("s");
  {
    Conn caller(p.caller_port), callee(p.callee_port);
    ASSERT_TRUE(caller.send_all("x"));
    EXPECT_EQ(callee.recv_exact(1), "x");
    caller.close();
    EXPECT_TRUE(callee.closed_by_peer());
  }
  ASSERT_TRUE(eventually([&] { return !relay.stats().sessions.at(0).paired; }));
  {  // the listeners stay: a new pair forms; this time the callee closes first
    Conn caller(p.caller_port), callee(p.callee_port);
    ASSERT_TRUE(callee.send_all("y"));
    EXPECT_EQ(caller.recv_exact(1), "y");
    callee.close();
    EXPECT_TRUE(caller.closed_by_peer());
  }
  EXPECT_EQ(relay.stats().pairs, 2u);
}

TEST(RelayService, SecondCallerWaitsForTheNextPair) {
  RelayService relay(loopback());
  const RelaySessionPorts p = relay.open("s");
  Conn caller1(p.caller_port), callee1(p.callee_port);
  ASSERT_TRUE(caller1.send_all("one"));
  EXPECT_EQ(callee1.recv_exact(3), "one");
  Conn caller2(p.caller_port);
  ASSERT_TRUE(caller2.send_all("two"));
  ASSERT_TRUE(eventually([&] { return relay.stats().sessions.at(0).caller_waiting; }));
  EXPECT_EQ(callee1.recv_exact(3, 300ms), "");  // not mixed into the pair that exists
  caller1.close();
  EXPECT_TRUE(callee1.closed_by_peer());
  Conn callee2(p.callee_port);  // ZeroMQ's reconnect
  EXPECT_EQ(callee2.recv_exact(3), "two");
  EXPECT_EQ(relay.stats().pairs, 2u);
}

TEST(RelayService, NewestWaitingConnectionReplacesAnOlderOne) {
  RelayService relay(loopback());
  const RelaySessionPorts p = relay.open("s");
  Conn stale(p.callee_port);
  ASSERT_TRUE(eventually([&] { return relay.stats().sessions.at(0).callee_waiting; }));
  Conn fresh(p.callee_port);
  EXPECT_TRUE(stale.closed_by_peer());
  Conn caller(p.caller_port);
  ASSERT_TRUE(caller.send_all("hi"));
  EXPECT_EQ(fresh.recv_exact(2), "hi");
}

TEST(RelayService, IdleSessionsExpireButPairedOnesDoNot) {
  RelayServiceConfig c = loopback();
  c.idle_timeout = 300ms;
  RelayService relay(c);
  const RelaySessionPorts idle = relay.open("idle"), busy = relay.open("busy");
  auto caller = std::make_unique<Conn>(busy.caller_port);
  Conn callee(busy.callee_port);
  ASSERT_TRUE(eventually([&] { return relay.stats().sessions_expired == 1; }));
  const RelayStats s = relay.stats();
  ASSERT_EQ(s.sessions.size(), 1u);
  EXPECT_EQ(s.sessions[0].id, busy.id);
  EXPECT_EQ(connect_to(idle.caller_port), -1);  // its ports are closed
  EXPECT_FALSE(relay.close(idle.id));

  std::this_thread::sleep_for(500ms);  // longer than the timeout, paired all along
  EXPECT_EQ(relay.stats().sessions.size(), 1u);
  caller.reset();  // the pair ends: the timeout runs from now
  EXPECT_TRUE(callee.closed_by_peer());
  ASSERT_TRUE(eventually([&] { return relay.stats().sessions.empty(); }));
  EXPECT_EQ(relay.stats().sessions_expired, 2u);
}

TEST(RelayService, SessionLimitAndReuseByKey) {
  RelayServiceConfig c = loopback();
  c.max_sessions = 2;
  RelayService relay(c);
  const RelaySessionPorts a = relay.open("a"), b = relay.open("b");
  const RelaySessionPorts again = relay.open("a");
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.id, a.id);
  EXPECT_EQ(again.caller_port, a.caller_port);
  try {
    relay.open("c");
    FAIL() << "a third session was opened";
  } catch (const RelaySessionLimit& e) {
    EXPECT_NE(std::string(e.what()).find("max_sessions"), std::string::npos) << e.what();
  }
  EXPECT_EQ(relay.stats().sessions_refused, 1u);
  EXPECT_TRUE(relay.close(a.id));
  EXPECT_FALSE(relay.close(a.id));
  EXPECT_NE(relay.open("c").id, b.id);
  EXPECT_EQ(relay.stats().sessions_opened, 3u);
}

TEST(RelayService, RejectsBadConfig) {
  RelayServiceConfig c = loopback(-1);
  EXPECT_THROW(RelayService{c}, std::invalid_argument);
  c = loopback();
  c.max_sessions = 0;
  EXPECT_THROW(RelayService{c}, std::invalid_argument);
  c = loopback();
  c.bind_host = "no-such-host.invalid";
  EXPECT_THROW(RelayService{c}, std::invalid_argument);
}

// A TCP forwarder of the test's own that records both directions: clients -> target in [0], back in [1].
class RecordingProxy {
 public:
  explicit RecordingProxy(uint16_t target) : target_(target) {
    listen_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_, 8) != 0 ||
        ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("proxy: cannot listen");
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~RecordingProxy() {
    stop_ = true;
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : copiers_) t.join();
    for (int fd : fds_) ::close(fd);
    ::close(listen_);
  }
  uint16_t port() const { return port_; }
  std::string recorded(int dir) {
    std::lock_guard lock(mu_);
    return seen_[dir];
  }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int client = ::accept(listen_, nullptr, nullptr);
      const int server = client < 0 ? -1 : connect_to(target_);
      if (server < 0) {
        if (client >= 0) ::close(client);
        continue;
      }
      std::lock_guard lock(mu_);
      fds_.push_back(client);
      fds_.push_back(server);
      copiers_.emplace_back([this, client, server] { copy(client, server, 0); });
      copiers_.emplace_back([this, client, server] { copy(server, client, 1); });
    }
  }
  void copy(int from, int to, int dir) {
    char buf[16 << 10];
    for (;;) {
      const ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n <= 0) break;
      {
        std::lock_guard lock(mu_);
        seen_[dir].append(buf, size_t(n));
      }
      if (::send(to, buf, size_t(n), MSG_NOSIGNAL) != n) break;
    }
    ::shutdown(to, SHUT_RDWR);
    ::shutdown(from, SHUT_RDWR);
  }

  uint16_t target_, port_ = 0;
  int listen_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> copiers_;
  std::string seen_[2];
  std::thread acceptor_;
};

std::string endpoint(uint16_t port) { return "tcp://127.0.0.1:" + std::to_string(port); }

// Polls the ZAP handler, the ROUTER and the DEALER (one thread owns them all) until `sock` has a message.
bool receive(zmq::socket_t& sock, ZapHandler& zap, std::vector<zmq::message_t>& parts,
             std::chrono::milliseconds limit = 10s) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    zmq::pollitem_t items[] = {{zap.socket().handle(), 0, ZMQ_POLLIN, 0}, {sock.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, 20ms);
    zap.handle_pending();
    parts.clear();
    zmq::message_t m;
    while (sock.recv(m, zmq::recv_flags::dontwait)) {
      const bool more = m.more();
      parts.push_back(std::move(m));
      if (!more) return true;
    }
  }
  return false;
}

TEST(RelayService, CurveZmqEndToEndThroughTheRelaySeesOnlyCiphertext) {
  const Keys ka = generate_keys(), kb = generate_keys(), stranger = generate_keys();
  RelayService relay(loopback(50e6));
  const RelaySessionPorts p = relay.open("a|b");
  // A -> proxy -> relay caller port; B's ROUTER -> proxy -> relay callee port.
  RecordingProxy a_side(p.caller_port), b_side(p.callee_port);

  zmq::context_t ctx;
  AdmissionPolicy policy;
  policy.allowed = {ka.id};
  ZapHandler zap(ctx, policy);
  zmq::socket_t router(ctx, zmq::socket_type::router);
  configure_curve_server(router, kb);
  router.set(zmq::sockopt::linger, 0);
  router.connect(endpoint(b_side.port()));  // B dials out: it cannot be dialled
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  configure_curve_client(dealer, ka, kb.id);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(endpoint(a_side.port()));

  std::string hello, reply;
  while (hello.size() < (64 << 10)) hello += "PLAINTEXT-MARKER-hello-from-A ";
  while (reply.size() < (64 << 10)) reply += "PLAINTEXT-MARKER-reply-from-B ";
  dealer.send(zmq::buffer(hello));
  std::vector<zmq::message_t> got;
  ASSERT_TRUE(receive(router, zap, got));
  ASSERT_EQ(got.size(), 2u);  // routing id, body
  EXPECT_EQ(got[1].to_string(), hello);
  EXPECT_EQ(std::string(got[1].gets("User-Id")), ka.public_z85);  // authenticated by B, not the relay

  router.send(got[0], zmq::send_flags::sndmore);
  router.send(zmq::buffer(reply));
  ASSERT_TRUE(receive(dealer, zap, got));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].to_string(), reply);

  // What entered the relay on one side left it on the other, byte for byte, and none of it is plaintext.
  ASSERT_TRUE(eventually(
      [&] { return a_side.recorded(0) == b_side.recorded(1) && b_side.recorded(0) == a_side.recorded(1); }));
  for (RecordingProxy* proxy : {&a_side, &b_side}) {
    for (int dir : {0, 1}) {
      const std::string wire = proxy->recorded(dir);
      EXPECT_GT(wire.size(), 64u << 10);
      EXPECT_EQ(wire.find("PLAINTEXT-MARKER"), std::string::npos);
      EXPECT_EQ(wire.find("hello-from"), std::string::npos);
    }
  }
  EXPECT_TRUE(eventually([&] {
    const RelayStats s = relay.stats();
    return s.caller_to_callee == a_side.recorded(0).size() && s.callee_to_caller == a_side.recorded(1).size();
  }));

  // A stranger through another session: B's ZAP handler refuses it, whatever the relay does.
  const RelaySessionPorts q = relay.open("stranger|b");
  router.connect(endpoint(q.callee_port));
  zmq::socket_t intruder(ctx, zmq::socket_type::dealer);
  configure_curve_client(intruder, stranger, kb.id);
  intruder.set(zmq::sockopt::linger, 0);
  intruder.connect(endpoint(q.caller_port));
  intruder.send(zmq::buffer(std::string("let me in")));
  EXPECT_FALSE(receive(router, zap, got, 1500ms));
  EXPECT_GE(zap.denied(), 1u);
}

// A bulk transfer caller -> callee: the sender writes as fast as the relay takes it, the receiver counts.
class BulkFlow {
 public:
  BulkFlow(const RelaySessionPorts& p) : caller_(p.caller_port), callee_(p.callee_port) {
    sender_ = std::thread([this] {
      const std::string block = random_bytes(64 << 10, 3);
      while (!stop_ && caller_.send_all(block)) {
      }
    });
    receiver_ = std::thread([this] {
      std::vector<char> buf(64 << 10);
      for (;;) {
        const ssize_t n = ::recv(callee_.fd(), buf.data(), buf.size(), 0);
        if (n <= 0) break;
        received_ += uint64_t(n);
      }
    });
  }
  ~BulkFlow() {
    stop_ = true;
    caller_.shutdown();
    callee_.shutdown();
    sender_.join();
    receiver_.join();
  }
  uint64_t received() const { return received_; }

 private:
  Conn caller_, callee_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> received_{0};
  std::thread sender_, receiver_;
};

// Bit/s of each flow over `window`.
std::vector<double> goodput(const std::vector<BulkFlow*>& flows, std::chrono::milliseconds window) {
  std::vector<uint64_t> start;
  for (BulkFlow* f : flows) start.push_back(f->received());
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(window);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> bps;
  for (size_t i = 0; i < flows.size(); ++i) bps.push_back(double(flows[i]->received() - start[i]) * 8 / s);
  return bps;
}

TEST(RelayService, GoodputReachesTheCap) {
  const double cap = 20e6;
  RelayService relay(loopback(cap));
  BulkFlow flow(relay.open("bulk"));
  std::this_thread::sleep_for(300ms);  // past the start (connects, pairing, the first burst)
  const double bps = goodput({&flow}, 3s)[0];
  EXPECT_GE(bps, 0.8 * cap);
  EXPECT_LE(bps, 1.1 * cap);
}

TEST(RelayService, SessionsShareTheCapFairly) {
  const double cap = 20e6;
  RelayService relay(loopback(cap));
  BulkFlow first(relay.open("first"));
  std::this_thread::sleep_for(1s);  // the first flow has had the whole cap for a while
  BulkFlow second(relay.open("second"));
  std::this_thread::sleep_for(300ms);
  const std::vector<double> bps = goodput({&first, &second}, 3s);
  EXPECT_GE(bps[0] + bps[1], 0.8 * cap);
  EXPECT_LE(bps[0] + bps[1], 1.1 * cap);
  for (double b : bps) {
    EXPECT_GE(b, 0.35 * cap);
    EXPECT_LE(b, 0.65 * cap);
  }
}

}  // namespace
}  // namespace murmur::net

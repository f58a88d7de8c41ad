// The relay service's goodput against its bandwidth cap (issue 19's target: >= 80 %), on loopback, as
// JSON: for caps of 10, 50 and 200 Mbit/s, the median over --runs runs of goodput/cap for a raw TCP bulk
// flow and for ZeroMQ CURVE (DEALER -> ROUTER, 512 KiB messages, the transport's chunk size) through the
// relay; and, uncapped, CURVE through the relay against CURVE direct (what the extra hop costs here).
// Goodput counts what the receiver gets (for CURVE, message bodies only) between its first and last
// arrival inside the measuring window, after a warm-up.
//
//   build/bench_relay [--runs 5] [--window 2] [--caps 10,50,200]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "node/net/keys.h"
#include "node/net/relay_service.h"
#include "node/net/zap.h"

namespace {

using namespace murmur::net;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr size_t kCurveMessage = 512 << 10;
constexpr auto kWarmup = 500ms;

// Receiver-side arrivals: (time, bytes so far).
struct Arrivals {
  std::vector<std::pair<Clock::time_point, uint64_t>> points;
  uint64_t total = 0;
  void add(uint64_t n) {
    total += n;
    points.emplace_back(Clock::now(), total);
  }
  // bit/s between the first and the last arrival in [from, to].
  double goodput(Clock::time_point from, Clock::time_point to) const {
    const auto first = std::find_if(points.begin(), points.end(), [&](auto& p) { return p.first >= from; });
    auto last = first;
    for (auto it = first; it != points.end() && it->first <= to; ++it) last = it;
    if (first == points.end() || last == first) return 0;
    return double(last->second - first->second) * 8 /
           std::chrono::duration<double>(last->first - first->first).count();
  }
};

int connect_to(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("connect failed");
  return fd;
}

double tcp_run(double cap_bps, std::chrono::duration<double> window) {
  RelayServiceConfig c;
  c.bind_host = "127.0.0.1";
  c.bandwidth_bps = cap_bps;
  RelayService relay(c);
  const RelaySessionPorts p = relay.open("bench");
  const int caller = connect_to(p.caller_port), callee = connect_to(p.callee_port);
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    const std::vector<char> block(64 << 10, 'x');
    while (!stop && ::send(caller, block.data(), block.size(), MSG_NOSIGNAL) > 0) {
    }
  });
  Arrivals got;
  const auto start = Clock::now(), from = start + kWarmup;
  const auto to = from + std::chrono::duration_cast<Clock::duration>(window);
  std::vector<char> buf(64 << 10);
  while (Clock::now() < to) {
    const ssize_t n = ::recv(callee, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    got.add(uint64_t(n));
  }
  stop = true;
  ::shutdown(caller, SHUT_RDWR);
  ::shutdown(callee, SHUT_RDWR);
  sender.join();
  ::close(caller);
  ::close(callee);
  return got.goodput(from, to);
}

// cap_bps < 0: direct, no relay.
double curve_run(double cap_bps, std::chrono::duration<double> window) {
  const Keys ka = generate_keys(), kb = generate_keys();
  std::unique_ptr<RelayService> relay;
  RelaySessionPorts p;
  if (cap_bps >= 0) {
    RelayServiceConfig c;
    c.bind_host = "127.0.0.1";
    c.bandwidth_bps = cap_bps;
    relay = std::make_unique<RelayService>(c);
    p = relay->open("bench");
  }
  // B: the ROUTER (CURVE server) and its ZAP handler, on this thread; A: the DEALER, on its own.
  zmq::context_t ctx_b, ctx_a;
  AdmissionPolicy policy;
  policy.allowed = {ka.id};
  ZapHandler zap(ctx_b, policy);
  zmq::socket_t router(ctx_b, zmq::socket_type::router);
  configure_curve_server(router, kb);
  router.set(zmq::sockopt::linger, 0);
  router.set(zmq::sockopt::rcvhwm, 4);
  std::string dial;
  if (relay) {
    router.connect("tcp://127.0.0.1:" + std::to_string(p.callee_port));
    dial = "tcp://127.0.0.1:" + std::to_string(p.caller_port);
  } else {
    router.bind("tcp://127.0.0.1:0");
    dial = router.get(zmq::sockopt::last_endpoint);
  }
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    zmq::socket_t dealer(ctx_a, zmq::socket_type::dealer);
    configure_curve_client(dealer, ka, kb.id);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::sndhwm, 4);
    dealer.set(zmq::sockopt::sndtimeo, 50);
    dealer.connect(dial);
    const std::string body(kCurveMessage, 'x');
    while (!stop) (void)dealer.send(zmq::buffer(body));
  });
  Arrivals got;
  const auto start = Clock::now(), from = start + kWarmup;
  const auto to = from + std::chrono::duration_cast<Clock::duration>(window);
  while (Clock::now() < to) {
    zmq::pollitem_t items[] = {{zap.socket().handle(), 0, ZMQ_POLLIN, 0},
                               {router.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, 20ms);
    zap.handle_pending();
    zmq::message_t m;
    while (router.recv(m, zmq::recv_flags::dontwait)) {
      if (!m.more()) got.add(m.size());  // the body; the routing id frame is not goodput
    }
  }
  stop = true;
  sender.join();
  return got.goodput(from, to);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double round3(double x) { return std::round(x * 1000) / 1000; }

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  double window_s = 2;
  std::vector<double> caps_mbit = {10, 50, 200};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--runs") {
      runs = std::stoi(value);
    } else if (flag == "--window") {
      window_s = std::stod(value);
    } else if (flag == "--caps") {
      caps_mbit.clear();
      std::stringstream ss(value);
      for (std::string item; std::getline(ss, item, ',');) caps_mbit.push_back(std::stod(item));
    } else {
      std::cerr << "usage: bench_relay [--runs N] [--window SECONDS] [--caps MBIT,MBIT,...]\n";
      return 2;
    }
  }
  const std::chrono::duration<double> window(window_s);
  nlohmann::json out = {{"runs", runs}, {"window_s", window_s}, {"curve_message_bytes", kCurveMessage}};
  for (double cap_mbit : caps_mbit) {
    std::vector<double> tcp, curve;
    for (int r = 0; r < runs; ++r) {
      tcp.push_back(tcp_run(cap_mbit * 1e6, window) / (cap_mbit * 1e6));
      curve.push_back(curve_run(cap_mbit * 1e6, window) / (cap_mbit * 1e6));
    }
    auto rounded = [](std::vector<double> v) {
      for (double& x : v) x = round3(x);
      return v;
    };
    out["capped"].push_back({{"cap_mbit", cap_mbit},
                             {"tcp_goodput_over_cap_median", round3(median(tcp))},
                             {"curve_goodput_over_cap_median", round3(median(curve))},
                             {"tcp_runs", rounded(tcp)},
                             {"curve_runs", rounded(curve)}});
  }
  std::vector<double> direct, relayed;
  for (int r = 0; r < runs; ++r) {
    direct.push_back(curve_run(-1, window) / 1e6);
    relayed.push_back(curve_run(0, window) / 1e6);
  }
  out["uncapped"] = {{"curve_direct_mbit_median", std::round(median(direct))},
                     {"curve_relay_mbit_median", std::round(median(relayed))},
                     {"relay_over_direct", round3(median(relayed) / median(direct))}};
  std::cout << out.dump(2) << std::endl;
}

// murmur bench transport: payload goodput between two Murmur transports (two
// threads, loopback) beside a bare CurveZMQ PUSH/PULL pair and a NULL-security
// pair in the same run (the stack's limits), and probe round-trip latency while a
// bulk transfer is under way.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>
#include <zmq.hpp>

#include "node/cli/commands.h"
#include "node/net/large_buffers.h"
#include "node/net/transport.h"

namespace murmur::cli {
namespace {

namespace g = murmur::gossip;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct TransportBenchArgs {
  std::string sizes = "1M,16M,64M,256M";
  int repeats = 7;  // medians of 3 left the 1 MiB ratio to chance on a busy 2-core machine
  double probe_seconds = 3;
  size_t chunk_bytes = net::TransportConfig{}.chunk_bytes;
  bool json = false;
};

size_t parse_size(const std::string& s) {
  size_t pos = 0;
  const unsigned long long v = std::stoull(s, &pos);
  const std::string unit = s.substr(pos);
  const size_t mult = unit.empty()  ? 1
                      : unit == "K" ? 1u << 10
                      : unit == "M" ? 1u << 20
                      : unit == "G" ? 1u << 30
                                    : 0;
  if (mult == 0 || v == 0 || v > (size_t(1) << 30) / mult)
    throw std::invalid_argument("--sizes: bad size '" + s + "' (1K..1G)");
  return size_t(v) * mult;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

// A bare PUSH/PULL pair, one context per end (as the transports have): seconds per message.
double bare_seconds(size_t bytes, int repeats, bool curve) {
  zmq::context_t cs, cr;
  zmq::socket_t pull(cr, zmq::socket_type::pull), push(cs, zmq::socket_type::push);
  const net::Keys server = net::generate_keys(), client = net::generate_keys();
  if (curve) {
    pull.set(zmq::sockopt::curve_server, 1);
    pull.set(zmq::sockopt::curve_secretkey, server.secret_z85);
    net::configure_curve_client(push, client, server.id);
  }
  for (auto* s : {&pull, &push}) s->set(zmq::sockopt::linger, 0);
  pull.bind("tcp://127.0.0.1:*");
  push.connect(pull.get(zmq::sockopt::last_endpoint));
  const std::vector<uint8_t> msg(bytes, 1);
  std::vector<double> secs;
  for (int r = 0; r <= repeats; ++r) {  // r == 0: warm-up (connection, handshake)
    const auto t0 = Clock::now();
    push.send(zmq::buffer(msg), zmq::send_flags::none);
    zmq::message_t got;
    if (!pull.recv(got) || got.size() != bytes) throw std::runtime_error("bare pair lost a message");
    if (r > 0) secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return median(secs);
}

// The receiving peer on its own thread: answers probes, reports payload arrivals.
class Receiver {
 public:
  explicit Receiver(net::TransportConfig cfg) : t_(std::move(cfg)), thread_([this] { run(); }) {}
  ~Receiver() {
    stop_ = true;
    thread_.join();
  }
  std::string endpoint() const { return t_.endpoint(); }
  // Waits for the next whole payload; returns its arrival time and size.
  std::pair<Clock::time_point, size_t> next_payload() {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, 600s, [&] { return !arrivals_.empty(); }))
      throw std::runtime_error("payload lost");
    auto a = arrivals_.front();
    arrivals_.pop_front();
    return a;
  }

 private:
  void run() {
    while (!stop_) {
      for (net::Incoming& in : t_.poll(5ms)) {
        if (auto* ping = std::get_if<g::Ping>(&in.msg)) {
          t_.send(peer_, g::Ack{ping->seq, t_.id(), {}});
        } else if (auto* hello = std::get_if<g::Hello>(&in.msg)) {
          peer_ = hello->self;
        } else if (auto* p = std::get_if<g::Payload>(&in.msg)) {
          std::lock_guard lock(mu_);
          arrivals_.emplace_back(Clock::now(), p->bytes.size());
          cv_.notify_one();
          consumer_.release(std::move(p->bytes));  // a peer hands payloads to its training thread
        }
      }
    }
  }
  net::Transport t_;
  net::BufferReaper consumer_;
  g::PeerInfo peer_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Clock::time_point, size_t>> arrivals_;
  std::thread thread_;
};

// Polls the sender until the receiver reports the payload.
double murmur_seconds(net::Transport& a, const g::PeerInfo& b, Receiver& rx, size_t bytes, uint64_t& seq) {
  std::vector<uint8_t> payload(bytes, 1);  // handed over by move, as a peer hands over its encoded delta
  const auto t0 = Clock::now();
  if (!a.send_payload(b, 1, seq++, std::move(payload))) throw std::runtime_error("payload queue full");
  while (a.queued_payloads(b.id) > 0) a.poll(1ms);
  const auto [t1, size] = rx.next_payload();
  if (size != bytes) throw std::runtime_error("payload arrived with the wrong size");
  return std::chrono::duration<double>(t1 - t0).count();
}

void run_bench(const TransportBenchArgs& args) {
  if (args.repeats < 1) throw std::invalid_argument("--repeats must be at least 1");
  std::vector<size_t> sizes;
  for (size_t at = 0; at <= args.sizes.size();) {
    const size_t comma = std::min(args.sizes.find(',', at), args.sizes.size());
    sizes.push_back(parse_size(args.sizes.substr(at, comma - at)));
    at = comma + 1;
  }
  const net::Keys ka = net::generate_keys(), kb = net::generate_keys();
  net::TransportConfig ca, cb;
  ca.keys = ka;
  cb.keys = kb;
  ca.chunk_bytes = cb.chunk_bytes = args.chunk_bytes;
  ca.admission.allowed = {kb.id};
  cb.admission.allowed = {ka.id};
  net::Transport a(ca);
  Receiver rx(cb);
  const g::PeerInfo b{kb.id, rx.endpoint(), 0};
  a.send(b, g::Hello{{ka.id, a.endpoint(), 0}});
  uint64_t seq = 0;
  murmur_seconds(a, b, rx, 1 << 20, seq);  // warm-up: connections, handshakes

  nlohmann::json rows = nlohmann::json::array();
  for (const size_t bytes : sizes) {
    std::vector<double> m;
    for (int r = 0; r < args.repeats; ++r) m.push_back(murmur_seconds(a, b, rx, bytes, seq));
    const double ms = median(m), curve = bare_seconds(bytes, args.repeats, true),
                 null = bare_seconds(bytes, args.repeats, false);
    rows.push_back({{"bytes", bytes},
                    {"murmur_ms", 1e3 * ms},
                    {"murmur_mbps", double(bytes) / ms / 1e6},
                    {"bare_curve_mbps", double(bytes) / curve / 1e6},
                    {"bare_null_mbps", double(bytes) / null / 1e6}});
  }

  // Probes every 10 ms while payloads of the largest size keep the bulk link busy. As in a peer
  // (node/peer/mailbox.h), another thread builds the payloads and the network thread only queues
  // them: building 256 MiB on the probing thread would stall its probes, not the transport's.
  std::vector<double> rtt_ms;
  std::map<uint64_t, Clock::time_point> sent;
  const auto end = Clock::now() + std::chrono::duration<double>(args.probe_seconds);
  std::mutex ready_mu;
  std::condition_variable ready_cv;
  std::deque<std::vector<uint8_t>> ready;
  std::atomic<bool> producing{true};
  std::thread producer([&] {
    while (producing) {
      std::vector<uint8_t> next(sizes.back(), 2);
      std::unique_lock lock(ready_mu);
      ready_cv.wait(lock, [&] { return ready.size() < 2 || !producing; });
      ready.push_back(std::move(next));
    }
  });
  auto next_probe = Clock::now();
  uint64_t probe = 0, bulk_bytes = 0;
  const auto t_bulk = Clock::now();
  while (Clock::now() < end) {
    std::unique_lock lock(ready_mu);
    if (a.queued_payloads(b.id) < 2 && !ready.empty()) {
      std::vector<uint8_t> next = std::move(ready.front());
      ready.pop_front();
      lock.unlock();
      ready_cv.notify_one();
      if (!a.send_payload(b, 1, seq++, std::move(next))) throw std::runtime_error("payload queue full");
      bulk_bytes += sizes.back();
    } else {
      lock.unlock();
    }
    if (Clock::now() >= next_probe) {
      sent[probe] = Clock::now();
      a.send(b, g::Ping{probe++, {}});
      next_probe += 10ms;
    }
    for (const net::Incoming& in : a.poll(1ms)) {
      if (auto* ack = std::get_if<g::Ack>(&in.msg); ack && sent.count(ack->seq)) {
        rtt_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent[ack->seq]).count());
      }
    }
  }
  {
    std::lock_guard lock(ready_mu);
    producing = false;
  }
  ready_cv.notify_one();
  producer.join();
  while (a.queued_payloads(b.id) > 0) a.poll(1ms);
  const double bulk_secs = std::chrono::duration<double>(Clock::now() - t_bulk).count();
  const nlohmann::json j = {{"transport", "curve router/dealer, loopback, two threads"},
                            {"chunk_bytes", ca.chunk_bytes},
                            {"repeats", args.repeats},
                            {"goodput", rows},
                            {"probe",
                             {{"sent", probe},
                              {"answered", rtt_ms.size()},
                              {"rtt_p50_ms", percentile(rtt_ms, 0.5)},
                              {"rtt_p99_ms", percentile(rtt_ms, 0.99)},
                              {"bulk_mbps_during", double(bulk_bytes) / bulk_secs / 1e6}}}};
  if (args.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\n", j.dump(2).c_str());
  }
}

}  // namespace

void add_bench_transport(CLI::App& bench) {
  auto a = std::make_shared<TransportBenchArgs>();
  CLI::App* sub = bench.add_subcommand(
      "transport",
      "Payload goodput (MB/s, medians) between two Murmur transports on loopback beside bare CurveZMQ and "
      "NULL-security PUSH/PULL pairs in the same run, and probe RTT p50/p99 during a bulk transfer");
  sub->add_option("--sizes", a->sizes, "Comma-separated payload sizes with K/M/G suffixes")
      ->capture_default_str();
  sub->add_option("--repeats", a->repeats, "Timed transfers per size (the median is reported)")
      ->capture_default_str();
  sub->add_option("--probe-seconds", a->probe_seconds, "How long probes run during bulk traffic")
      ->check(CLI::Range(0.1, 600.0))
      ->capture_default_str();
  sub->add_option("--chunk-bytes", a->chunk_bytes, "Payload chunk size of the Murmur transport")
      ->check(CLI::Range(size_t(1) << 10, gossip::kMaxChunkBytes))
      ->capture_default_str();
  sub->add_flag("--json", a->json, "Print one JSON object on one line");
  sub->callback([a] { run_bench(*a); });
}

}  // namespace murmur::cli

#include "node/net/relay_service.h"

#include <array>
#include <cmath>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <utility>

#include "netem/asio.h"
// The cap is netem's sans-IO token bucket: murmur_net links murmur_netem already (for its units), and one
// Shaper shared by every flow, asked in arrival order, is exactly the FIFO the fair share needs.
#include "netem/shaper.h"
#include "node/net/metrics.h"

namespace murmur::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;
using netem::Nanos;

constexpr size_t kMaxChunk = 256 << 10;  // uncapped reads: large, so a GB/s costs few syscalls
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);  // after EMFILE and the like: no busy loop

enum Side : int { kCaller = 0, kCallee = 1 };

struct Session;

// What all sessions share: the cap and the lifetime totals.
struct Shared {
  std::optional<netem::Shaper> cap;
  Clock::time_point epoch = Clock::now();
  size_t chunk = kMaxChunk;
  std::array<uint64_t, 2> bytes{};  // by the side that sent them
  uint64_t pairs = 0;
};

// One caller connection spliced to one callee connection. pipe[s] reads sock[s] and writes sock[1 - s],
// one chunk at a time: a read, the cap's release time, the write, the next read. So each direction holds
// at most one chunk, and TCP back-pressure does the rest.
struct Pair : std::enable_shared_from_this<Pair> {
  struct Pipe {
    std::vector<char> buf;
    asio::steady_timer timer;
  };

  std::shared_ptr<Session> session;
  Shared& shared;
  std::array<tcp::socket, 2> sock;
  std::array<Pipe, 2> pipe;
  bool closed = false;

  Pair(std::shared_ptr<Session> s, Shared& sh, tcp::socket caller, tcp::socket callee)
      : session(std::move(s)),
        shared(sh),
        sock{std::move(caller), std::move(callee)},
        pipe{Pipe{std::vector<char>(sh.chunk), asio::steady_timer(sock[0].get_executor())},
             Pipe{std::vector<char>(sh.chunk), asio::steady_timer(sock[0].get_executor())}} {}

  void start() {
    read(kCaller);
    read(kCallee);
  }

  void read(int s) {
    if (closed) return;
    sock[s].async_read_some(
        asio::buffer(pipe[s].buf), [self = shared_from_this(), s](const error_code& ec, size_t n) {
          if (self->closed) return;
          if (ec) return self->close();  // EOF included: the other end is closed too, ZeroMQ reconnects
          self->shape(s, n);
        });
  }

  void shape(int s, size_t n) {
    if (!shared.cap) return write(s, n);
    const Nanos now = std::chrono::duration_cast<Nanos>(Clock::now() - shared.epoch);
    const Nanos due = shared.cap->release(now, n);
    if (due <= now) return write(s, n);
    pipe[s].timer.expires_at(shared.epoch + due);
    pipe[s].timer.async_wait([self = shared_from_this(), s, n](const error_code& ec) {
      if (!ec && !self->closed) self->write(s, n);
    });
  }

  void write(int s, size_t n);
  void close();
};

struct Session : std::enable_shared_from_this<Session> {
  Shared& shared;
  RelaySessionId id;
  std::string key;
  std::chrono::milliseconds idle_timeout;
  std::function<void(RelaySessionId)> expire;  // asks the service to close this session
  std::array<tcp::acceptor, 2> acceptor;
  std::array<std::optional<tcp::socket>, 2> waiting;
  std::array<asio::steady_timer, 2> retry;
  std::shared_ptr<Pair> pair;
  asio::steady_timer idle;
  uint64_t idle_generation = 0;  // a cancelled idle timer's handler may already be queued: it checks this
  std::array<uint64_t, 2> bytes{};
  uint64_t pairs = 0;
  bool closed = false;

  Session(asio::io_context& io, Shared& sh, RelaySessionId i, std::string k,
          std::chrono::milliseconds idle_ms, const tcp::endpoint& bind)
      : shared(sh),
        id(i),
        key(std::move(k)),
        idle_timeout(idle_ms),
        acceptor{tcp::acceptor(io), tcp::acceptor(io)},
        retry{asio::steady_timer(io), asio::steady_timer(io)},
        idle(io) {
    for (tcp::acceptor& a : acceptor) {
      a.open(bind.protocol());
      a.set_option(tcp::acceptor::reuse_address(true));
      a.bind(bind);
      a.listen();
    }
  }

  uint16_t port(int s) const { return acceptor[s].local_endpoint().port(); }

  void start() {
    arm_idle();
    accept(kCaller);
    accept(kCallee);
  }

  void accept(int s) {
    acceptor[s].async_accept([self = shared_from_this(), s](const error_code& ec, tcp::socket socket) {
      if (self->closed || ec == asio::error::operation_aborted) return;
      if (ec) {  // transient (EMFILE, ECONNABORTED): the session keeps listening
        self->retry[s].expires_after(kAcceptRetry);
        self->retry[s].async_wait([self, s](const error_code& e) {
          if (!e && !self->closed) self->accept(s);
        });
        return;
      }
      self->accepted(s, std::move(socket));
      self->accept(s);
    });
  }

  void accepted(int s, tcp::socket socket) {
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);  // the relay adds no batching delay of its own
    socket.set_option(asio::socket_base::keep_alive(true), ignored);
    if (waiting[s]) waiting[s]->close(ignored);  // the newest connection is the live one
    waiting[s] = std::move(socket);
    try_pair();
  }

  void try_pair() {
    if (closed || pair || !waiting[kCaller] || !waiting[kCallee]) return;
    pair = std::make_shared<Pair>(shared_from_this(), shared, std::move(*waiting[kCaller]),
                                  std::move(*waiting[kCallee]));
    waiting[kCaller].reset();
    waiting[kCallee].reset();
    ++pairs;
    ++shared.pairs;
    ++idle_generation;
    idle.cancel();
    pair->start();
  }

  void pair_closed(const Pair* p) {
    if (closed || pair.get() != p) return;
    pair.reset();
    arm_idle();
    try_pair();
  }

  void arm_idle() {
    if (idle_timeout.count() <= 0) return;
    const uint64_t generation = ++idle_generation;
    idle.expires_after(idle_timeout);
    idle.async_wait([self = shared_from_this(), generation](const error_code& ec) {
      if (ec || self->closed || self->pair || generation != self->idle_generation) return;
      self->expire(self->id);
    });
  }

  void close() {
    if (closed) return;
    closed = true;
    error_code ignored;
    for (int s : {kCaller, kCallee}) {
      acceptor[s].close(ignored);
      retry[s].cancel();
      if (waiting[s]) waiting[s]->close(ignored);
      waiting[s].reset();
    }
    idle.cancel();
    if (auto p = std::exchange(pair, nullptr)) p->close();
  }
};

void Pair::write(int s, size_t n) {
  asio::async_write(sock[1 - s], asio::buffer(pipe[s].buf.data(), n),
                    [self = shared_from_this(), s, n](const error_code& ec, size_t) {
                      if (self->closed) return;
                      if (ec) return self->close();
                      self->session->bytes[s] += n;
                      self->shared.bytes[s] += n;
                      self->read(s);
                    });
}

void Pair::close() {
  if (closed) return;
  closed = true;
  error_code ignored;
  for (int s : {kCaller, kCallee}) {
    pipe[s].timer.cancel();
    sock[s].close(ignored);
  }
  session->pair_closed(this);
}

}  // namespace

struct RelayService::Impl {
  asio::io_context io;  // first: destroyed last, after the sockets that use it
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  tcp::endpoint bind;
  Shared shared;
  std::map<RelaySessionId, std::shared_ptr<Session>> sessions;
  std::map<std::string, RelaySessionId> by_key;
  RelaySessionId next_id = 1;
  uint64_t opened = 0, expired = 0, refused = 0;

  // Runs f on the io thread and returns its result (or rethrows its exception).
  template <class F>
  auto call(F f) -> decltype(f()) {
    if (io.get_executor().running_in_this_thread())
      throw std::logic_error("RelayService: methods must not be called from the relay's own thread");
    auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
    auto result = task->get_future();
    asio::post(io, [task] { (*task)(); });
    return result.get();
  }

  bool remove(RelaySessionId id) {
    auto it = sessions.find(id);
    if (it == sessions.end()) return false;
    it->second->close();
    by_key.erase(it->second->key);
    sessions.erase(it);
    return true;
  }
};

void export_relay_stats(const RelayStats& s, MetricsRegistry& m) {
  CounterFamily& bytes =
      m.counters("murmur_relay_bytes_total", "Bytes this peer relayed for others (ciphertext), by direction",
                 {"direction"});
  bytes.set({"caller_to_callee"}, s.caller_to_callee);
  bytes.set({"callee_to_caller"}, s.callee_to_caller);
  m.counters("murmur_relay_pairs_total", "Connection pairs the relay spliced", {}).set({}, s.pairs);
  CounterFamily& sessions = m.counters("murmur_relay_sessions_total", "Relay sessions by event", {"event"});
  sessions.set({"opened"}, s.sessions_opened);
  sessions.set({"expired"}, s.sessions_expired);
  sessions.set({"refused"}, s.sessions_refused);
}

RelayService::RelayService(RelayServiceConfig config)
    : config_(std::move(config)), impl_(std::make_unique<Impl>()) {
  if (!(config_.bandwidth_bps >= 0) || std::isinf(config_.bandwidth_bps))
    throw std::invalid_argument("relay bandwidth must be a non-negative number of bit/s (0 = unlimited)");
  if (config_.max_sessions == 0) throw std::invalid_argument("relay max_sessions must be at least 1");
  if (config_.idle_timeout.count() < 0) throw std::invalid_argument("relay idle_timeout must be >= 0");
  {
    tcp::resolver resolver(impl_->io);
    error_code ec;
    auto results = resolver.resolve(config_.bind_host, "0", tcp::resolver::passive, ec);
    if (ec || results.empty())
      throw std::invalid_argument("relay: cannot resolve bind host '" + config_.bind_host +
                                  "': " + ec.message());
    impl_->bind = results.begin()->endpoint();
  }
  if (config_.bandwidth_bps > 0) {
    impl_->shared.cap.emplace(netem::LinkProfile{.rate_bps = config_.bandwidth_bps});
    // A chunk never exceeds the bucket's burst (5 ms of the cap): flows interleave finely.
    impl_->shared.chunk = size_t(std::min<uint64_t>(kMaxChunk, impl_->shared.cap->burst()));
  }
  thread_ = std::thread([this] { impl_->io.run(); });
}

RelayService::~RelayService() {
  try {
    impl_->call([this] {
      while (!impl_->sessions.empty()) impl_->remove(impl_->sessions.begin()->first);
      return 0;
    });
  } catch (...) {  // the io thread is gone already; nothing left to close
  }
  impl_->guard.reset();
  impl_->io.stop();
  thread_.join();
}

RelaySessionPorts RelayService::open(const std::string& key) {
  return impl_->call([&] {
    Impl& m = *impl_;
    if (auto it = m.by_key.find(key); it != m.by_key.end()) {
      const Session& s = *m.sessions.at(it->second);
      return RelaySessionPorts{s.id, s.port(kCaller), s.port(kCallee), false};
    }
    if (m.sessions.size() >= config_.max_sessions) {
      ++m.refused;
      throw RelaySessionLimit("relay: " + std::to_string(m.sessions.size()) +
                              " sessions open, the most max_sessions allows; session '" + key + "' refused");
    }
    const RelaySessionId id = m.next_id++;
    std::shared_ptr<Session> s;
    try {
      s = std::make_shared<Session>(m.io, m.shared, id, key, config_.idle_timeout, m.bind);
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("relay: cannot listen on " + config_.bind_host + ": " + e.code().message());
    }
    s->expire = [&m](RelaySessionId expired_id) {
      if (m.remove(expired_id)) ++m.expired;
    };
    m.sessions.emplace(id, s);
    m.by_key.emplace(key, id);
    ++m.opened;
    s->start();
    return RelaySessionPorts{id, s->port(kCaller), s->port(kCallee), true};
  });
}

bool RelayService::close(RelaySessionId id) {
  return impl_->call([&] { return impl_->remove(id); });
}

RelayStats RelayService::stats() {
  return impl_->call([&] {
    const Impl& m = *impl_;
    RelayStats r;
    for (const auto& [id, s] : m.sessions) {
      r.sessions.push_back({id, s->key, s->port(kCaller), s->port(kCallee), s->bytes[kCaller],
                            s->bytes[kCallee], s->pairs, s->pair != nullptr, s->waiting[kCaller].has_value(),
                            s->waiting[kCallee].has_value()});
    }
    r.caller_to_callee = m.shared.bytes[kCaller];
    r.callee_to_caller = m.shared.bytes[kCallee];
    r.pairs = m.shared.pairs;
    r.sessions_opened = m.opened;
    r.sessions_expired = m.expired;
    r.sessions_refused = m.refused;
    return r;
  });
}

}  // namespace murmur::net

#include "netem/relay.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "netem/asio.h"

namespace murmur::netem {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr size_t kMaxRead = 256 << 10;  // unshaped reads: large, so a GB/s costs few syscalls
constexpr size_t kPoolBuffers = 64;     // recycled buffers kept per lane
// A shared link counts as full while its bucket is booked this far ahead: a short queue, so the flows
// crossing it take turns chunk by chunk and a probe waits about this long behind them.
constexpr Nanos kBookAhead = std::chrono::milliseconds(50);

// Bytes in the last completed window of about a second.
struct Meter {
  uint64_t total = 0, window = 0;
  Clock::time_point start = Clock::now();
  double rate_bps = 0;

  void roll(Clock::time_point now) {
    const double s = std::chrono::duration<double>(now - start).count();
    if (s < 1.0) return;
    rate_bps = double(window) * 8 / s;
    window = 0;
    start = now;
  }
  void add(uint64_t n, Clock::time_point now) {
    roll(now);
    total += n;
    window += n;
  }
};

struct Connection;

// One direction of a link, shared by its connections as flows share a real link; or a shared link
// (Relay::add_shared) that directions of several links cross.
struct Lane {
  Shaper shaper;
  Clock::time_point epoch;  // of the shaper's times
  Meter meter;
  uint64_t queued = 0;
  std::vector<std::vector<char>> pool;
  // Pipes that stopped reading because the lane was full. Another connection's write is what frees
  // the lane, so they must be woken from there: a pipe with nothing queued gets no write of its own.
  std::vector<std::pair<std::weak_ptr<Connection>, Direction>> parked;
  // A link's lane: the shared links its bytes cross first, in order.
  std::vector<std::shared_ptr<Lane>> via;
  // A shared link: it frees up with time, not with writes (those come after the path's delay), so a
  // timer wakes its parked pipes.
  std::optional<asio::steady_timer> wake;
  bool wake_armed = false;

  Lane(const LinkProfile& p, uint64_t seed, Clock::time_point e) : shaper(p, seed), epoch(e) {}

  bool shared() const { return wake.has_value(); }
  Nanos since(Clock::time_point t) const { return std::chrono::duration_cast<Nanos>(t - epoch); }

  // A chunk never exceeds a burst, so shaped bytes flow smoothly rather than in lumps.
  size_t read_size() const {
    size_t n = shaper.unshaped() ? kMaxRead : size_t(std::min<uint64_t>(kMaxRead, shaper.burst()));
    for (const auto& s : via) n = std::min(n, s->read_size());
    return n;
  }

  // Read-ahead bound: the bytes in flight over the emulated delays (the shared links' too) plus 50 ms
  // per queue, so a rate change takes effect quickly and memory stays bounded with many links.
  uint64_t queue_limit() const {
    const LinkProfile& p = shaper.profile();
    if (std::isinf(p.rate_bps)) return 8 << 20;
    Nanos wait = p.delay + p.jitter + kBookAhead;
    for (const auto& s : via) wait += s->shaper.profile().delay + kBookAhead;
    const double sec = std::chrono::duration<double>(wait).count();
    return std::clamp<uint64_t>(uint64_t(p.rate_bps / 8 * sec) + shaper.burst(), 256 << 10, 64 << 20);
  }

  bool full(Clock::time_point now) const {
    if (shared()) return !shaper.unshaped() && shaper.busy_until() > since(now) + kBookAhead;
    return queued >= queue_limit();
  }

  // When a chunk of n bytes read at `now` reaches the other end: it books its slot on every shared link
  // on the way, then crosses this lane's shaper; the shared links' delays add to its release. Times are
  // this lane's.
  Nanos release(Clock::time_point now, uint64_t n) {
    Clock::time_point t = now;
    Nanos delay{0};
    for (const auto& s : via) {
      if (s->shaper.unshaped()) continue;
      const Nanos d = s->shaper.depart(s->since(t), n);
      if (d == Nanos::max()) return d;
      t = s->epoch + d;
      delay += s->shaper.profile().delay;
    }
    if (shaper.unshaped()) return since(t) + delay;
    const Nanos r = shaper.release(since(t), n);
    return r == Nanos::max() ? r : r + delay;
  }

  // Bytes read and not yet written, on this lane and the shared links it crosses.
  void account(uint64_t n, bool add) {
    queued = add ? queued + n : queued - n;
    for (const auto& s : via) s->queued = add ? s->queued + n : s->queued - n;
  }

  std::vector<char> take(size_t n) {
    while (!pool.empty()) {
      std::vector<char> b = std::move(pool.back());
      pool.pop_back();
      if (b.size() == n) return b;
    }
    return std::vector<char>(n);
  }
  void give(std::vector<char>&& b) {
    if (pool.size() < kPoolBuffers) pool.push_back(std::move(b));
  }
};

struct Link {
  LinkId id;
  tcp::acceptor acceptor;
  tcp::endpoint target;
  Clock::time_point epoch = Clock::now();
  Lane up, down;
  std::optional<PartitionMode> partition;
  uint64_t accepted = 0, next_conn = 0;
  std::unordered_map<uint64_t, std::weak_ptr<Connection>> conns;

  Link(LinkId i, asio::io_context& io, const tcp::endpoint& listen, const tcp::endpoint& to,
       const LinkConfig& c)
      : id(i),
        acceptor(io),
        target(to),
        up(c.shape.up, c.seed, epoch),
        down(c.shape.down, c.seed ^ 0x5bd1e995, epoch) {
    acceptor.open(listen.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(listen);
    acceptor.listen();
  }
  Nanos now() const { return std::chrono::duration_cast<Nanos>(Clock::now() - epoch); }
  Lane& lane(Direction d) { return d == Direction::up ? up : down; }
  template <class F>
  void each_connection(F&& f) {
    std::vector<std::shared_ptr<Connection>> live;
    for (auto& [key, weak] : conns) {
      if (auto c = weak.lock()) live.push_back(std::move(c));
    }
    for (auto& c : live) f(*c);
  }
};

struct Chunk {
  std::vector<char> buf;
  size_t size;
  Nanos release;
};

// One direction of one connection: reads from `from`, queues shaped chunks, writes them to `to` when due.
struct Pipe {
  Pipe(tcp::socket& f, tcp::socket& t, Lane& l) : from(f), to(t), lane(l), timer(f.get_executor()) {}
  tcp::socket& from;
  tcp::socket& to;
  Lane& lane;
  asio::steady_timer timer;
  std::deque<Chunk> queue;
  bool reading = false, writing = false, timer_armed = false, eof = false, shut = false, parked = false;
};

struct Connection : std::enable_shared_from_this<Connection> {
  std::shared_ptr<Link> link;
  uint64_t key;
  tcp::socket client, server;
  Pipe up, down;
  bool closed = false;

  Pipe& pipe(Direction d) { return d == Direction::up ? up : down; }

  Connection(std::shared_ptr<Link> l, uint64_t k, tcp::socket c)
      : link(std::move(l)),
        key(k),
        client(std::move(c)),
        server(client.get_executor()),
        up(client, server, link->up),
        down(server, client, link->down) {}

  void start() {
    server.async_connect(link->target, [self = shared_from_this()](const error_code& ec) {
      if (ec || self->closed) return self->close();
      error_code ignored;
      self->client.set_option(tcp::no_delay(true), ignored);  // added latency must be the emulated one only
      self->server.set_option(tcp::no_delay(true), ignored);
      self->pump(self->up);
      self->pump(self->down);
    });
  }

  void pump(Pipe& p) {
    write(p);
    read(p);
  }

  void read(Pipe& p) {
    if (closed || p.reading || p.eof || !server.is_open() || link->partition == PartitionMode::blackhole)
      return;
    if (Lane* full = full_lane(p.lane)) {  // resumed by wake_parked when the lane drains
      if (!p.parked) full->parked.emplace_back(weak_from_this(), &p == &up ? Direction::up : Direction::down);
      p.parked = true;
      if (full->shared()) arm(*full);
      return;
    }
    auto buf = std::make_shared<std::vector<char>>(p.lane.take(p.lane.read_size()));
    p.reading = true;
    p.from.async_read_some(asio::buffer(*buf),
                           [self = shared_from_this(), &p, buf](const error_code& ec, size_t n) {
                             self->on_read(p, std::move(*buf), ec, n);
                           });
  }

  void on_read(Pipe& p, std::vector<char>&& buf, const error_code& ec, size_t n) {
    p.reading = false;
    if (closed) return;
    if (ec) {
      if (ec != asio::error::eof) return close();
      p.eof = true;
      return finish(p);
    }
    if (link->partition == PartitionMode::drop) {
      p.lane.give(std::move(buf));
      return read(p);
    }
    p.queue.push_back({std::move(buf), n, p.lane.release(Clock::now(), n)});
    p.lane.account(n, true);
    pump(p);
  }

  void write(Pipe& p) {
    if (closed || p.writing || p.queue.empty() || link->partition == PartitionMode::blackhole) return;
    const Nanos due = p.queue.front().release;
    if (due > link->now()) {
      if (!p.timer_armed && due != Nanos::max()) {
        p.timer_armed = true;
        p.timer.expires_at(link->epoch + due);
        p.timer.async_wait([self = shared_from_this(), &p](const error_code& ec) {
          p.timer_armed = false;
          if (!ec) self->write(p);
        });
      }
      return;
    }
    p.writing = true;
    const Chunk& c = p.queue.front();
    asio::async_write(
        p.to, asio::buffer(c.buf.data(), c.size),
        [self = shared_from_this(), &p](const error_code& ec, size_t n) { self->on_written(p, ec, n); });
  }

  void on_written(Pipe& p, const error_code& ec, size_t n) {
    p.writing = false;
    if (closed) return;
    if (ec) return close();
    p.lane.account(n, false);
    const auto now = Clock::now();
    p.lane.meter.add(n, now);
    for (const auto& s : p.lane.via) s->meter.add(n, now);
    p.lane.give(std::move(p.queue.front().buf));
    p.queue.pop_front();
    wake_parked(p.lane);
    pump(p);
    finish(p);
  }

  // Half-close once a direction's source ended and its queue drained; close when both have.
  void finish(Pipe& p) {
    if (!p.eof || p.writing || !p.queue.empty() || p.shut) return;
    p.shut = true;
    error_code ignored;
    p.to.shutdown(tcp::socket::shutdown_send, ignored);
    if (up.shut && down.shut) close();
  }

  void drop_queues() {
    for (Pipe* p : {&up, &down}) {
      // A chunk being written stays until its write completes (its buffer is in use).
      while (p->queue.size() > (p->writing ? 1u : 0u)) {
        p->lane.account(p->queue.back().size, false);
        p->lane.give(std::move(p->queue.back().buf));
        p->queue.pop_back();
      }
      wake_parked(p->lane);
    }
  }

  void close() {
    if (closed) return;
    closed = true;
    for (Pipe* p : {&up, &down}) {
      for (const Chunk& c : p->queue) p->lane.account(c.size, false);
      p->queue.clear();
      p->timer.cancel();
    }
    error_code ignored;
    client.close(ignored);
    server.close(ignored);
    link->conns.erase(key);
    wake_parked(link->up);
    wake_parked(link->down);
  }

  // The first lane of p's path (its link's, then the shared ones) that has no room.
  static Lane* full_lane(Lane& lane) {
    const auto now = Clock::now();
    if (lane.full(now)) return &lane;
    for (const auto& s : lane.via) {
      if (s->full(now)) return s.get();
    }
    return nullptr;
  }

  // A shared link's timer: fires when its booking falls back to kBookAhead.
  static void arm(Lane& lane) {
    if (lane.wake_armed) return;
    lane.wake_armed = true;
    lane.wake->expires_at(lane.epoch + lane.shaper.busy_until() - kBookAhead);
    lane.wake->async_wait([&lane](const error_code& ec) {
      lane.wake_armed = false;
      if (!ec) wake_parked(lane);
    });
  }

  // Parked pipes read again, oldest first, once the lane has room: every connection gets its turn,
  // so a probe on a quiet connection never waits for a bulk one to finish, and flows crossing a shared
  // link take turns.
  static void wake_parked(Lane& lane) {
    if (lane.parked.empty()) return;
    if (lane.full(Clock::now())) {
      if (lane.shared()) arm(lane);
      return;
    }
    auto parked = std::exchange(lane.parked, {});
    for (auto& [weak, dir] : parked) {
      if (auto c = weak.lock()) {
        c->pipe(dir).parked = false;
        c->read(c->pipe(dir));
      }
    }
  }
};

void accept_loop(const std::shared_ptr<Link>& link) {
  link->acceptor.async_accept([link](const error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !link->acceptor.is_open()) return;
    if (!ec) {
      ++link->accepted;
      if (link->partition == PartitionMode::reset) {
        error_code ignored;
        socket.close(ignored);
      } else {
        auto conn = std::make_shared<Connection>(link, link->next_conn++, std::move(socket));
        link->conns.emplace(conn->key, conn);
        conn->start();
      }
    }
    accept_loop(link);  // transient errors (EMFILE, ECONNABORTED) must not stop the link
  });
}

tcp::endpoint resolve(const HostPort& hp, bool passive) {
  asio::io_context io;
  tcp::resolver resolver(io);
  error_code ec;
  const auto flags = passive ? tcp::resolver::passive : tcp::resolver::flags();
  auto results = resolver.resolve(hp.host, std::to_string(hp.port), flags, ec);
  if (ec || results.empty()) {
    throw std::runtime_error("cannot resolve " + hp.host + ":" + std::to_string(hp.port) + ": " +
                             ec.message());
  }
  return results.begin()->endpoint();
}

}  // namespace

struct Relay::Impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::map<LinkId, std::shared_ptr<Link>> links;
  std::map<SharedId, std::shared_ptr<Lane>> shared;
  LinkId next_id = 1;
  SharedId next_shared = 1;

  // Runs f on the io thread and returns its result (or rethrows its exception).
  template <class F>
  auto call(F f) -> decltype(f()) {
    if (io.get_executor().running_in_this_thread()) {
      throw std::logic_error("netem::Relay: control methods must not be called from the relay's thread");
    }
    auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
    auto result = task->get_future();
    asio::post(io, [task] { (*task)(); });
    return result.get();
  }

  Link& link(LinkId id) {
    auto it = links.find(id);
    if (it == links.end()) throw std::invalid_argument("netem::Relay: no link " + std::to_string(id));
    return *it->second;
  }

  Lane& shared_lane(SharedId id) {
    auto it = shared.find(id);
    if (it == shared.end()) throw std::invalid_argument("netem::Relay: no shared link " + std::to_string(id));
    return *it->second;
  }
};

namespace {

void validate_shared(const LinkProfile& p) {
  validate(p);
  if (p.jitter != Nanos(0) || p.impairs_packets())
    throw std::invalid_argument("a shared link takes bandwidth, burst and delay only");
}

}  // namespace

Relay::Relay() : impl_(std::make_unique<Impl>()) {
  thread_ = std::thread([this] { impl_->io.run(); });
}

Relay::~Relay() {
  try {
    impl_->call([this] {
      for (auto& [id, link] : impl_->links) {
        error_code ignored;
        link->acceptor.close(ignored);
        link->each_connection([](Connection& c) { c.close(); });
      }
      impl_->links.clear();
      for (auto& [id, lane] : impl_->shared) lane->wake->cancel();
      return 0;
    });
  } catch (...) {  // the io thread is gone already; nothing left to close
  }
  impl_->guard.reset();
  impl_->io.stop();
  thread_.join();
}

LinkId Relay::add_link(const LinkConfig& config) {
  validate(config.shape.up);
  validate(config.shape.down);
  const tcp::endpoint listen = resolve(config.listen, true), target = resolve(config.target, false);
  return impl_->call([&] {
    const LinkId id = impl_->next_id++;
    std::shared_ptr<Link> link;
    try {
      link = std::make_shared<Link>(id, impl_->io, listen, target, config);
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("cannot listen on " + config.listen.host + ":" +
                               std::to_string(config.listen.port) + ": " + e.code().message());
    }
    for (auto [ids, lane] :
         {std::pair{&config.up_via, &link->up}, std::pair{&config.down_via, &link->down}}) {
      for (SharedId s : *ids) {
        impl_->shared_lane(s);  // throws for an unknown id
        lane->via.push_back(impl_->shared.at(s));
      }
    }
    impl_->links.emplace(id, link);
    accept_loop(link);
    return id;
  });
}

void Relay::remove_link(LinkId id) {
  impl_->call([&] {
    Link& link = impl_->link(id);
    error_code ignored;
    link.acceptor.close(ignored);
    link.each_connection([](Connection& c) { c.close(); });
    impl_->links.erase(id);
    return 0;
  });
}

uint16_t Relay::port(LinkId id) {
  return impl_->call([&] { return impl_->link(id).acceptor.local_endpoint().port(); });
}

void Relay::set_profile(LinkId id, Direction dir, const LinkProfile& profile) {
  validate(profile);
  impl_->call([&] {
    Link& link = impl_->link(id);
    link.lane(dir).shaper.set_profile(link.now(), profile);
    link.each_connection([dir](Connection& c) { c.pump(dir == Direction::up ? c.up : c.down); });
    return 0;
  });
}

void Relay::set_trace(LinkId id, Direction dir, std::vector<TracePoint> trace) {
  impl_->call([&] {
    impl_->link(id).lane(dir).shaper.set_trace(std::move(trace));
    return 0;
  });
}

void Relay::add_stall(LinkId id, Direction dir, Window window) {
  impl_->call([&] {
    impl_->link(id).lane(dir).shaper.add_stall(window);
    return 0;
  });
}

void Relay::partition(LinkId id, PartitionMode mode) {
  impl_->call([&] {
    Link& link = impl_->link(id);
    link.partition = mode;
    if (mode == PartitionMode::reset) link.each_connection([](Connection& c) { c.close(); });
    if (mode == PartitionMode::drop) link.each_connection([](Connection& c) { c.drop_queues(); });
    return 0;
  });
}

void Relay::heal(LinkId id) {
  impl_->call([&] {
    Link& link = impl_->link(id);
    link.partition.reset();
    link.each_connection([](Connection& c) {
      c.pump(c.up);
      c.pump(c.down);
    });
    return 0;
  });
}

LinkStats Relay::stats(LinkId id) {
  return impl_->call([&] {
    Link& link = impl_->link(id);
    const auto now = Clock::now();
    LinkStats s;
    for (Direction d : {Direction::up, Direction::down}) {
      Lane& lane = link.lane(d);
      lane.meter.roll(now);
      (d == Direction::up ? s.up : s.down) = {lane.meter.total, lane.queued, lane.meter.rate_bps};
    }
    s.accepted = link.accepted;
    s.connections = link.conns.size();
    s.partitioned = link.partition.has_value();
    return s;
  });
}

SharedId Relay::add_shared(const LinkProfile& profile) {
  validate_shared(profile);
  return impl_->call([&] {
    auto lane = std::make_shared<Lane>(profile, 1, Clock::now());
    lane->wake.emplace(impl_->io);
    const SharedId id = impl_->next_shared++;
    impl_->shared.emplace(id, std::move(lane));
    return id;
  });
}

void Relay::set_shared_profile(SharedId id, const LinkProfile& profile) {
  validate_shared(profile);
  impl_->call([&] {
    Lane& lane = impl_->shared_lane(id);
    lane.shaper.set_profile(lane.since(Clock::now()), profile);
    Connection::wake_parked(lane);
    return 0;
  });
}

DirectionStats Relay::shared_stats(SharedId id) {
  return impl_->call([&] {
    Lane& lane = impl_->shared_lane(id);
    lane.meter.roll(Clock::now());
    return DirectionStats{lane.meter.total, lane.queued, lane.meter.rate_bps};
  });
}

}  // namespace murmur::netem

#include "netem/probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "netem/asio.h"

namespace murmur::netem {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr size_t kChunk = 256 << 10;
constexpr size_t kPeriod = 251;

// kChunk + kPeriod bytes of the pattern: the slice at offset o % kPeriod continues the stream at o.
const std::vector<char>& pattern() {
  static const std::vector<char> p = [] {
    std::vector<char> v(kChunk + kPeriod);
    for (size_t i = 0; i < v.size(); ++i) v[i] = char(i % kPeriod);
    return v;
  }();
  return p;
}

struct Session : std::enable_shared_from_this<Session> {
  tcp::socket socket;
  std::atomic<uint64_t>& received;
  std::vector<char> buf = std::vector<char>(kChunk);
  char mode = 0;
  bool ok = true;
  uint64_t offset = 0;

  Session(tcp::socket s, std::atomic<uint64_t>& r) : socket(std::move(s)), received(r) {}

  void start() {
    asio::async_read(socket, asio::buffer(&mode, 1),
                     [self = shared_from_this()](const error_code& ec, size_t) {
                       if (!ec) self->next();
                     });
  }

  void next() {
    socket.async_read_some(asio::buffer(buf), [self = shared_from_this()](const error_code& ec, size_t n) {
      if (ec == asio::error::eof && self->mode != 'E') return self->reply();
      if (!ec) self->on_data(n);
    });
  }

  void on_data(size_t n) {
    if (mode == 'E') {
      asio::async_write(socket, asio::buffer(buf.data(), n),
                        [self = shared_from_this()](const error_code& ec, size_t) {
                          if (!ec) self->next();
                        });
      return;
    }
    if (mode == 'V' && ok) ok = std::memcmp(buf.data(), pattern().data() + offset % kPeriod, n) == 0;
    offset += n;
    received += n;
    next();
  }

  void reply() {
    mode = ok ? 'K' : 'X';
    asio::async_write(socket, asio::buffer(&mode, 1),
                      [self = shared_from_this()](const error_code&, size_t) {});
  }
};

void accept_loop(tcp::acceptor& acceptor, std::atomic<uint64_t>& received) {
  acceptor.async_accept([&acceptor, &received](const error_code& ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      error_code ignored;
      s.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(s), received)->start();
    }
    accept_loop(acceptor, received);
  });
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("probe: " + what + ": " + std::strerror(errno));
}

}  // namespace

struct ProbeServer::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};
};

ProbeServer::ProbeServer() : impl_(std::make_unique<Impl>()) {
  port_ = impl_->acceptor.local_endpoint().port();
  accept_loop(impl_->acceptor, received_);
  thread_ = std::thread([this] { impl_->io.run(); });
}

ProbeServer::~ProbeServer() {
  impl_->io.stop();
  thread_.join();
}

ProbeClient::ProbeClient(uint16_t port, char mode, Nanos timeout) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) fail("socket");
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  const timeval tv{.tv_sec = us / 1000000, .tv_usec = us % 1000000};
  const int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fail("connect to 127.0.0.1:" + std::to_string(port));
  }
  if (::send(fd_, &mode, 1, MSG_NOSIGNAL) != 1) {
    ::close(fd_);
    fail("send");
  }
}

ProbeClient::~ProbeClient() { ::close(fd_); }

void ProbeClient::send_pattern(uint64_t bytes) {
  while (bytes > 0) {
    const size_t n = size_t(std::min<uint64_t>(bytes, kChunk));
    const ssize_t w = ::send(fd_, pattern().data() + sent_ % kPeriod, n, MSG_NOSIGNAL);
    if (w <= 0) fail("send (timed out or closed)");
    sent_ += uint64_t(w);
    bytes -= uint64_t(w);
  }
}

void ProbeClient::finish() {
  ::shutdown(fd_, SHUT_WR);
  char verdict = 0;
  if (::recv(fd_, &verdict, 1, MSG_WAITALL) != 1) fail("waiting for the sink's verdict");
  if (verdict != 'K') throw std::runtime_error("probe: the sink saw bytes out of order, lost or duplicated");
}

Nanos ProbeClient::ping() {
  const auto t0 = std::chrono::steady_clock::now();
  char c = 'p';
  if (::send(fd_, &c, 1, MSG_NOSIGNAL) != 1) fail("ping send");
  if (::recv(fd_, &c, 1, MSG_WAITALL) != 1) fail("ping reply");
  return std::chrono::steady_clock::now() - t0;
}

double timed_transfer(uint16_t port, uint64_t bytes, bool verify, Nanos timeout) {
  const auto t0 = std::chrono::steady_clock::now();
  ProbeClient c(port, verify ? 'V' : 'S', timeout);
  c.send_pattern(bytes);
  c.finish();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Nanos median_round_trip(uint16_t port, int rounds) {
  ProbeClient c(port, 'E');
  c.ping();
  std::vector<Nanos> t;
  for (int i = 0; i < std::max(1, rounds); ++i) t.push_back(c.ping());
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

}  // namespace murmur::netem

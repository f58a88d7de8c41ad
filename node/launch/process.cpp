#include "node/launch/process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "node/run/interrupt.h"

namespace murmur::launch {

namespace fs = std::filesystem;

Process Process::spawn(const std::vector<std::string>& argv, const fs::path& log) {
  if (argv.empty()) throw std::invalid_argument("spawn: empty command");
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + log.string() + ": " + std::strerror(errno));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {  // child: only async-signal-safe calls until exec
    ::setpgid(0, 0);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execv(args[0], args.data());
    const char msg[] = "murmur: exec failed\n";
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(fd);
  run::track_child(pid);
  Process p;
  p.pid_ = pid;
  return p;
}

Process::Process(Process&& o) noexcept : pid_(o.pid_), status_(o.status_) { o.pid_ = -1; }

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0 && !status_) stop(std::chrono::milliseconds(0));
    pid_ = o.pid_;
    status_ = o.status_;
    o.pid_ = -1;
  }
  return *this;
}

Process::~Process() {
  if (pid_ > 0 && !status_) stop(std::chrono::milliseconds(0));
}

void Process::reap(bool block) {
  if (pid_ <= 0 || status_) return;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    run::untrack_child(pid_);
  }
}

bool Process::running() {
  reap(false);
  return pid_ > 0 && !status_;
}

std::optional<int> Process::exit_code() {
  reap(false);
  return status_;
}

void Process::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

std::optional<int> Process::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

int Process::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  signal(SIGTERM);
  return finish(grace);
}

int Process::finish(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (grace.count() > 0 && wait_for(grace)) return *status_;
  if (running()) ::kill(pid_, SIGKILL);
  reap(true);
  return status_.value_or(-1);
}

fs::path self_executable() { return fs::read_symlink("/proc/self/exe"); }

namespace {

// Binds a probe socket to 127.0.0.1:port (0: the kernel picks); the bound port, or 0 if taken.
int try_bind(int port) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(uint16_t(port));
  socklen_t len = sizeof a;
  const bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  const int err = errno;
  ::close(s);
  errno = err;  // the caller's error message names why the bind failed, not close()'s errno
  return ok ? ntohs(a.sin_port) : 0;
}

// The low end of the kernel's ephemeral range (bind to port 0 and outgoing connections draw from it).
int ephemeral_low() {
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  return f >> low ? low : 0;
}

}  // namespace

int free_tcp_port() {
  // Below the ephemeral range when there is room: a port handed out by bind(0) can be taken again by
  // the next bind(0) or connect() of any process (the runner's own relays included) before the peer
  // that was given it binds it (seen: a peer failing with "Address already in use").
  static std::atomic<uint32_t> next{uint32_t(::getpid()) * 7919u};
  const int low = ephemeral_low(), first = 10'000;
  for (int attempt = 0; low - first > 1'000 && attempt < 200; ++attempt) {
    if (const int port = try_bind(first + int(next.fetch_add(7919u) % uint32_t(low - first)))) return port;
  }
  if (const int port = try_bind(0)) return port;
  throw std::runtime_error(std::string("cannot find a free port: ") + std::strerror(errno));
}

}  // namespace murmur::launch

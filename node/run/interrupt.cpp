#include "node/run/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <csignal>

namespace murmur::run {

namespace {
std::atomic<bool> g_stop{false};
// A fixed table of atomics: the handler may only read lock-free memory and call kill().
constexpr size_t kMaxChildren = 1024;
std::atomic<pid_t> g_children[kMaxChildren];
static_assert(std::atomic<pid_t>::is_always_lock_free);

extern "C" void on_signal(int sig) {
  if (g_stop.exchange(true)) {
    for (auto& c : g_children)
      if (const pid_t pid = c.load(); pid > 0) ::kill(-pid, SIGKILL);
    _exit(128 + sig);
  }
  constexpr char msg[] = "\nmurmur: stopping after the current step (press Ctrl-C again to abort)\n";
  [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
}
}  // namespace

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_stop.load(std::memory_order_relaxed); }

void track_child(pid_t pid) {
  for (auto& c : g_children) {
    pid_t empty = 0;
    if (c.compare_exchange_strong(empty, pid)) return;
  }
}

void untrack_child(pid_t pid) {
  for (auto& c : g_children) {
    pid_t mine = pid;
    if (c.compare_exchange_strong(mine, 0)) return;
  }
}

}  // namespace murmur::run

#include "node/interrupt.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

namespace murmur {

namespace {
std::atomic<bool> g_stop{false};

extern "C" void on_signal(int sig) {
  if (g_stop.exchange(true)) _exit(128 + sig);
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

}  // namespace murmur

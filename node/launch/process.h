// Child processes for the launchers (`murmur swarm`, `murmur netem run`): start
// a command with its output sent to a file, signal it, reap it. POSIX only.
//
// Threading: a Process is used by one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace murmur::launch {

class Process {
 public:
  Process() = default;
  // Starts argv[0] (a path) with stdout and stderr appended to `log`. The child
  // gets its own process group so a terminal's Ctrl-C reaches only the launcher,
  // which then stops its children in order. Throws std::runtime_error.
  static Process spawn(const std::vector<std::string>& argv, const std::filesystem::path& log);
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();  // kills (SIGKILL) and reaps a child still running: none is left behind

  pid_t pid() const { return pid_; }
  bool running();                  // reaps the child if it has exited
  std::optional<int> exit_code();  // exit status, or 128 + signal; nullopt while running
  void signal(int sig);
  // SIGTERM, then SIGKILL if it has not exited within `grace`; returns the exit code.
  int stop(std::chrono::milliseconds grace);
  // Waits up to `grace` for an exit (after a SIGTERM sent already), then SIGKILLs; returns as
  // stop(). A second SIGTERM would be wrong: to a Murmur process it means "abort now".
  int finish(std::chrono::milliseconds grace);
  // Waits up to `timeout` for the child to exit by itself.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);

 private:
  void reap(bool block);
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// The path of the running executable (/proc/self/exe), for launching peers.
std::filesystem::path self_executable();

// A TCP port on 127.0.0.1 that was free a moment ago (a probe bind, then closed), drawn below the
// kernel's ephemeral range where there is room, so that bind(0) and outgoing connections of any
// process do not take it before it is used.
int free_tcp_port();

}  // namespace murmur::launch

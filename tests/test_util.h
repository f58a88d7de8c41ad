// Shared helpers for the tests: temporary directories, running commands, an HTTP GET, peer keys, and
// finding a Python interpreter that can import torch.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace murmur::test {

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "murmur-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int rc = -1;
  std::string output;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// One HTTP/1.1 GET to 127.0.0.1:port over a plain socket: the whole reply, read until the server
// closes (empty when nothing listens).
inline std::string http_get(int port, const std::string& target) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string req = "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) reply.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return reply;
}

inline std::string murmur_bin() { return MURMUR_BINARY; }
inline std::string murmur_cmd(const std::string& args) { return murmur_bin() + " " + args; }
inline std::string source_dir() { return MURMUR_SOURCE_DIR; }

// `murmur keygen --out dir`: the new public key (Z85).
inline std::string keygen(const std::filesystem::path& dir) {
  EXPECT_EQ(run_command(murmur_cmd("keygen --out " + dir.string())).rc, 0);
  std::ifstream f(dir / "peer.pub");
  std::string pub;
  std::getline(f, pub);
  return pub;
}

// Debian's python3-torch is importable from /usr/bin/python3 only; MURMUR_PYTHON overrides.
inline std::string torch_python() {
  for (const char* cand :
       {static_cast<const char*>(std::getenv("MURMUR_PYTHON")), "/usr/bin/python3", "python3"}) {
    if (!cand) continue;
    if (run_command(std::string(cand) + " -c 'import torch'").rc == 0) return cand;
  }
  return {};
}

}  // namespace murmur::test

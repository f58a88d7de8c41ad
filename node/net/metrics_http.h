// A minimal Prometheus endpoint (Boost.Beast): GET /metrics answers with the
// text the callback renders; anything else is 404. One background thread,
// one connection at a time, bounded request size: a scrape every few seconds
// is all it serves.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace murmur::net {

class MetricsServer {
 public:
  // Binds 127.0.0.1:port (0 = any free port); throws std::runtime_error naming
  // the port when it cannot. `render` is called on the server's thread.
  MetricsServer(int port, std::function<std::string()> render);
  ~MetricsServer();  // stops the thread
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  int port() const { return port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// Prometheus text format helpers: one sample line (with optional labels).
std::string prom_line(const std::string& name, double value, const std::string& labels = "");
std::string prom_header(const std::string& name, const char* type, const std::string& help);

}  // namespace murmur::net

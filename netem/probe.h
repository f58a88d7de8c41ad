// Loopback measurement tools for netem's tests and `murmur bench netem`: a server that sinks or echoes,
// and a blocking client that times transfers and round trips through it, directly or via a relay.
//
// Protocol: the client's first byte picks the mode: 'S' sink (read to EOF, reply 'K'), 'V' sink that
// checks every byte against the pattern (reply 'K', or 'X' at the first wrong byte: bytes reordered,
// lost or duplicated), 'E' echo. The pattern's byte i is i mod 251: a prime period, so any shift of a
// chunk boundary shows.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "netem/units.h"

namespace murmur::netem {

class ProbeServer {
 public:
  ProbeServer();  // listens on 127.0.0.1, any free port; serves on its own thread
  ~ProbeServer();
  ProbeServer(const ProbeServer&) = delete;
  ProbeServer& operator=(const ProbeServer&) = delete;

  uint16_t port() const { return port_; }
  uint64_t received() const { return received_.load(); }  // sink bytes so far, all connections

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::atomic<uint64_t> received_{0};
};

// A blocking client of a ProbeServer (or of a relay in front of one). Every wait is bounded by `timeout`;
// failures throw std::runtime_error.
class ProbeClient {
 public:
  ProbeClient(uint16_t port, char mode, Nanos timeout = std::chrono::seconds(10));
  ~ProbeClient();
  ProbeClient(const ProbeClient&) = delete;
  ProbeClient& operator=(const ProbeClient&) = delete;

  void send_pattern(uint64_t bytes);  // the next `bytes` of the pattern
  void finish();                      // half-closes, waits for the verdict; throws if the server saw 'X'
  Nanos ping();                       // one 1-byte round trip (echo mode)

 private:
  int fd_ = -1;
  uint64_t sent_ = 0;
};

// Seconds from connecting to the server's confirmation that it read all `bytes`.
double timed_transfer(uint16_t port, uint64_t bytes, bool verify, Nanos timeout = std::chrono::seconds(30));

// Median of `rounds` 1-byte round trips on one connection (after one warm-up round).
Nanos median_round_trip(uint16_t port, int rounds);

}  // namespace murmur::netem

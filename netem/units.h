// Strict parsing of the quantities a link is described with: bandwidths, durations, byte counts and
// HOST:PORT. Every parser throws std::invalid_argument with a message quoting the text; callers prefix
// the flag or field name.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace murmur::netem {

using Nanos = std::chrono::nanoseconds;

// A rate of kUnlimited bit/s means "no bandwidth limit".
inline constexpr double kUnlimited = std::numeric_limits<double>::infinity();

// Bit/s from "10mbit", "1.5gbit", "500kbit", "64kbps", "2000bps" (bits, decimal prefixes), "1MB", "1.5GB",
// "64KB" (bytes/s, decimal), "1MiB" (bytes/s, binary), an optional "/s" suffix, or "unlimited". "10mb" and
// bare numbers are rejected as ambiguous. Result in (0, 10 Tbit/s] or kUnlimited.
double parse_bandwidth(std::string_view text);

// "20ms", "2.5ms", "500us", "1s", "90s", "2min", "1h", "100ns" (a unit is required), at most `max`.
Nanos parse_duration(std::string_view text, Nanos max = std::chrono::hours(24 * 7));

// "1500B", "64KB", "1MB" (decimal), "64KiB", "1MiB" (binary), at most 1 GiB.
uint64_t parse_bytes(std::string_view text);

// A share of packets: "0.5%", "10%", "0%" (the % is required), in [0, 100]; returns the percentage.
double parse_percent(std::string_view text);

struct HostPort {
  std::string host;
  uint16_t port = 0;
};
// "127.0.0.1:9000", "localhost:9000", "[::1]:9000"; port 0 is allowed (any free port) only if allow_zero.
HostPort parse_host_port(std::string_view text, bool allow_zero = false);

// "12.3 Mbit/s", "unlimited": for status lines and errors.
std::string format_rate(double bits_per_s);
std::string format_duration(Nanos d);

}  // namespace murmur::netem

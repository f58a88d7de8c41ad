#include "netem/units.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <stdexcept>
#include <utility>

namespace murmur::netem {
namespace {

struct Unit {
  std::string_view name;
  double scale;
};

// Splits "12.5mbit" into 12.5 and "mbit"; the number must be finite and non-negative.
std::pair<double, std::string_view> split_number(std::string_view text, std::string_view what) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + i, v);
  if (i == 0 || ec != std::errc() || end != text.data() + i || !std::isfinite(v)) {
    throw std::invalid_argument(std::string(what) + " \"" + std::string(text) +
                                "\": expected a number then a unit");
  }
  return {v, text.substr(i)};
}

double lookup(std::string_view text, std::string_view what, std::string_view unit, const auto& units,
              std::string_view expected) {
  for (const Unit& u : units) {
    if (u.name == unit) return u.scale;
  }
  throw std::invalid_argument(
      std::string(what) + " \"" + std::string(text) +
      "\": " + (unit.empty() ? std::string("missing unit") : "unknown unit \"" + std::string(unit) + "\"") +
      " (use " + std::string(expected) + ")");
}

}  // namespace

double parse_bandwidth(std::string_view text) {
  if (text == "unlimited") return kUnlimited;
  auto [v, unit] = split_number(text, "bandwidth");
  if (unit.ends_with("/s")) unit.remove_suffix(2);
  // Lower-case b is bits, upper-case B bytes; "mb" or "Mb" could be either, so it is refused.
  if (unit.size() == 2 && (unit[1] == 'b') && unit[0] != 'b') {
    throw std::invalid_argument("bandwidth \"" + std::string(text) + "\": ambiguous unit \"" +
                                std::string(unit) + "\" (write " +
                                std::string(1, char(std::tolower(unit[0]))) + "bit for bits/s or " +
                                std::string(1, char(std::toupper(unit[0]))) + "B for bytes/s)");
  }
  static constexpr std::array<Unit, 21> units{{{"bit", 1},
                                               {"bps", 1},
                                               {"kbit", 1e3},
                                               {"kbps", 1e3},
                                               {"Kbit", 1e3},
                                               {"mbit", 1e6},
                                               {"Mbit", 1e6},
                                               {"mbps", 1e6},
                                               {"Mbps", 1e6},
                                               {"gbit", 1e9},
                                               {"Gbit", 1e9},
                                               {"gbps", 1e9},
                                               {"Gbps", 1e9},
                                               {"B", 8},
                                               {"KB", 8e3},
                                               {"kB", 8e3},
                                               {"MB", 8e6},
                                               {"GB", 8e9},
                                               {"KiB", 8 * 1024.},
                                               {"MiB", 8 * 1048576.},
                                               {"GiB", 8 * 1073741824.}}};
  const double bps =
      v * lookup(text, "bandwidth", unit, units, "kbit, mbit, gbit, bps, KB, MB, GB, KiB, MiB or unlimited");
  if (!(bps > 0) || bps > 1e13) {
    throw std::invalid_argument("bandwidth \"" + std::string(text) +
                                "\": must be above 0 and at most 10 Tbit/s");
  }
  return bps;
}

Nanos parse_duration(std::string_view text, Nanos max) {
  const auto [v, unit] = split_number(text, "duration");
  static constexpr std::array<Unit, 6> units{
      {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"min", 60e9}, {"h", 3600e9}}};
  const double ns = std::round(v * lookup(text, "duration", unit, units, "ns, us, ms, s, min or h"));
  if (ns > double(max.count())) {
    throw std::invalid_argument("duration \"" + std::string(text) + "\": at most " + format_duration(max));
  }
  return Nanos(int64_t(ns));
}

uint64_t parse_bytes(std::string_view text) {
  const auto [v, unit] = split_number(text, "size");
  static constexpr std::array<Unit, 7> units{{{"B", 1},
                                              {"KB", 1e3},
                                              {"kB", 1e3},
                                              {"MB", 1e6},
                                              {"KiB", 1024.},
                                              {"MiB", 1048576.},
                                              {"GiB", 1073741824.}}};
  const double b = std::round(v * lookup(text, "size", unit, units, "B, KB, MB, KiB, MiB or GiB"));
  if (b < 1 || b > 1073741824.) {
    throw std::invalid_argument("size \"" + std::string(text) + "\": must be between 1 B and 1 GiB");
  }
  return uint64_t(b);
}

double parse_percent(std::string_view text) {
  const auto [v, unit] = split_number(text, "percentage");
  if (unit != "%")
    throw std::invalid_argument("percentage \"" + std::string(text) + "\": expected e.g. 0.5%");
  if (!(v >= 0 && v <= 100))
    throw std::invalid_argument("percentage \"" + std::string(text) + "\": must be within 0%..100%");
  return v;
}

HostPort parse_host_port(std::string_view text, bool allow_zero) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    throw std::invalid_argument("address \"" + std::string(text) + "\": expected HOST:PORT");
  }
  std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned p = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p > 65535 ||
      (p == 0 && !allow_zero)) {
    throw std::invalid_argument("address \"" + std::string(text) + "\": port must be a number in " +
                                (allow_zero ? "0" : "1") + "..65535");
  }
  return {std::string(host), uint16_t(p)};
}

namespace {

// v in the first of `units` (largest first) that it reaches, else the last, as "%.3g<name>".
std::string with_unit(double v, std::initializer_list<Unit> units) {
  const Unit* u = units.begin();
  while (u + 1 != units.end() && v < u->scale) ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g%s", v / u->scale, std::string(u->name).c_str());
  return buf;
}

}  // namespace

std::string format_rate(double bits_per_s) {
  if (std::isinf(bits_per_s)) return "unlimited";
  return with_unit(bits_per_s, {{" Gbit/s", 1e9}, {" Mbit/s", 1e6}, {" kbit/s", 1e3}});
}

std::string format_duration(Nanos d) {
  return with_unit(double(d.count()), {{"s", 1e9}, {"ms", 1e6}, {"us", 1e3}});
}

}  // namespace murmur::netem

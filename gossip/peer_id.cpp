#include "gossip/peer_id.h"

#include <cstring>

namespace murmur::gossip {

namespace {
// ZeroMQ's Z85 alphabet (RFC 32); written out so gossip/ needs no libzmq.
constexpr char kZ85[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

int z85_value(char c) {
  const char* p = std::strchr(kZ85, c);
  return (c != '\0' && p != nullptr) ? static_cast<int>(p - kZ85) : -1;
}
}  // namespace

std::string to_z85(const PeerId& id) {
  std::string out;
  out.reserve(40);
  for (size_t i = 0; i < id.size(); i += 4) {
    uint32_t v = (uint32_t{id[i]} << 24) | (uint32_t{id[i + 1]} << 16) | (uint32_t{id[i + 2]} << 8) |
                 uint32_t{id[i + 3]};
    char group[5];
    for (int k = 4; k >= 0; --k) {
      group[k] = kZ85[v % 85];
      v /= 85;
    }
    out.append(group, 5);
  }
  return out;
}

std::optional<PeerId> peer_id_from_z85(std::string_view text) {
  if (text.size() != 40) return std::nullopt;
  PeerId id{};
  for (size_t g = 0; g < 8; ++g) {
    uint64_t v = 0;
    for (size_t k = 0; k < 5; ++k) {
      const int d = z85_value(text[g * 5 + k]);
      if (d < 0) return std::nullopt;
      v = v * 85 + static_cast<uint64_t>(d);
    }
    if (v > 0xffffffffULL) return std::nullopt;
    for (int b = 0; b < 4; ++b) id[g * 4 + b] = static_cast<uint8_t>(v >> (24 - 8 * b));
  }
  return id;
}

std::string short_name(const PeerId& id) { return to_z85(id).substr(0, 8); }

}  // namespace murmur::gossip

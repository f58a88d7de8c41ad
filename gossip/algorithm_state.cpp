#include "gossip/algorithm_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "compress/wire.h"

namespace murmur::gossip {

namespace {

constexpr uint8_t kMagic[4] = {'M', 'R', 'M', 'S'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kHasMomentum = 1, kHasPublicCopy = 2;

std::vector<float> read_array(compress::ByteReader& r, uint64_t n, const char* what) {
  const std::span<const uint8_t> b = r.bytes(n * sizeof(float), what);
  std::vector<float> v(n);
  if (n > 0) std::memcpy(v.data(), b.data(), b.size());
  if (!std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); }))
    throw std::runtime_error(std::string("algorithm state: ") + what + " holds a non-finite value");
  return v;
}

}  // namespace

std::vector<uint8_t> encode_algorithm_state(const AlgorithmState& s) {
  const bool m = !s.momentum.empty(), c = !s.public_copy.empty();
  if (m && c && s.momentum.size() != s.public_copy.size())
    throw std::invalid_argument("algorithm state: momentum and public copy sizes differ");
  std::vector<uint8_t> out;
  compress::ByteWriter w(out);
  for (const uint8_t b : kMagic) w.u8(b);
  w.u32(kVersion);
  w.u64(s.round);
  w.u64(m ? s.momentum.size() : s.public_copy.size());
  w.u32((m ? kHasMomentum : 0) | (c ? kHasPublicCopy : 0));
  w.u32(0);
  w.f32s(s.momentum);
  w.f32s(s.public_copy);
  w.finish();
  return out;
}

AlgorithmState decode_algorithm_state(std::span<const uint8_t> bytes, size_t expected_n) {
  try {
    compress::ByteReader r(bytes);
    for (const uint8_t b : kMagic)
      if (r.u8("magic") != b) throw std::runtime_error("algorithm state: bad magic");
    if (const uint32_t v = r.u32("version"); v != kVersion)
      throw std::runtime_error("algorithm state: version " + std::to_string(v) + ", this build reads " +
                               std::to_string(kVersion));
    AlgorithmState s;
    s.round = r.u64("round");
    const uint64_t n = r.u64("element count");
    const uint32_t flags = r.u32("flags");
    if ((flags & ~(kHasMomentum | kHasPublicCopy)) != 0 || r.u32("reserved") != 0)
      throw std::runtime_error("algorithm state: unknown flags");
    if (n != (flags != 0 ? expected_n : 0))
      throw std::runtime_error("algorithm state holds " + std::to_string(n) + " elements, the model has " +
                               std::to_string(expected_n));
    if (flags & kHasMomentum) s.momentum = read_array(r, n, "momentum");
    if (flags & kHasPublicCopy) s.public_copy = read_array(r, n, "public copy");
    r.expect_end("algorithm state");
    return s;
  } catch (const compress::DecodeError& e) {
    throw std::runtime_error(std::string("algorithm state: ") + e.what());
  }
}

}  // namespace murmur::gossip

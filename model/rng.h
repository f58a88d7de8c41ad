// splitmix64 (Steele, Lea & Flood 2014), written out so every compiler and
// standard library yields the same stream (std:: distributions are not
// specified bit-exactly). Used for initialisation and the data order.
#pragma once

#include <cmath>
#include <cstdint>

namespace murmur {

// The splitmix64 finaliser: a strong 64-bit mix, also used to derive stream keys.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() { return mix64(state_ += 0x9e3779b97f4a7c15ULL); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  // Uniform in [0, n) without modulo bias: reject the low `2^64 mod n` values.
  uint64_t below(uint64_t n) {
    const uint64_t reject_under = (0 - n) % n;
    for (;;) {
      const uint64_t r = next();
      if (r >= reject_under) return r % n;
    }
  }
  // Box-Muller without caching the second value, so the state stays one integer.
  double normal() {
    const double r = radius();
    return r * std::cos(6.283185307179586 * uniform());
  }
  // Both of Box-Muller's outputs of one draw: half the log and sqrt per normal, for bulk noise.
  void normals(double& a, double& b) {
    const double r = radius(), t = 6.283185307179586 * uniform();
    a = r * std::cos(t);
    b = r * std::sin(t);
  }

 private:
  double radius() { return std::sqrt(-2.0 * std::log(1.0 - uniform())); }  // 1 - u is in (0, 1]
  uint64_t state_;
};

}  // namespace murmur

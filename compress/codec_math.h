// Scalar building blocks shared by the CPU kernels and the CUDA kernels, so both
// produce the same bits: a counter-based hash for seeded randomness, exact
// fp16/bf16 conversions, the quantiser's rounding and the canonical block sum.
// Everything here is branch-free, so loops over it vectorise.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define MURMUR_HD __host__ __device__ __forceinline__
#else  // always inlined, so the vectorised CPU kernels (target clones) get them in their own ISA
#define MURMUR_HD inline __attribute__((always_inline))
#endif

namespace murmur::compress::math {

MURMUR_HD uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
MURMUR_HD float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// A 32-bit integer hash with full avalanche (Wellons' "lowbias32").
MURMUR_HD uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// Per-payload key from the caller's seed and a stream tag (one per use of randomness).
MURMUR_HD uint32_t stream_key(uint64_t seed, uint32_t stream) {
  return hash32(uint32_t(seed) ^ hash32(uint32_t(seed >> 32) ^ hash32(stream)));
}
inline constexpr uint32_t kStreamRounding = 1, kStreamRandk = 2, kStreamSample = 3, kStreamPowerSgd = 4;

// Random bits for element i: independent of how the span is split across threads or devices.
// element_key depends only on i >> 32, so loops over 32-bit offsets hoist it.
MURMUR_HD uint32_t element_key(uint32_t key, uint64_t i) { return key + uint32_t(i >> 32) * 0x9E3779B9U; }
MURMUR_HD uint32_t element_bits(uint32_t key, uint64_t i) {
  return hash32(uint32_t(i) ^ element_key(key, i));
}
// element_bits(key, first + i) with 32-bit lane arithmetic only, so loops over i vectorise:
// the high word of first + i is first's plus the carry out of the low word (i < 2^32).
MURMUR_HD uint32_t element_bits_at(uint32_t key, uint64_t first, uint32_t i) {
  const uint32_t lo = uint32_t(first) + i;
  const uint32_t carry = lo < uint32_t(first) ? 0x9E3779B9U : 0U;
  return hash32(lo ^ (element_key(key, first) + carry));
}
// Uniform in [0, 1) with 24 random bits (exact in float).
MURMUR_HD float uniform24(uint32_t bits) { return float(bits >> 8) * 0x1p-24f; }

// float -> fp16 bits, round to nearest even, denormals exact (Giesen's float_to_half_fast3_rtne,
// branches turned into selects). Finite inputs above 65504 round to infinity (0x7c00).
MURMUR_HD uint16_t float_to_half(float f) {
  const uint32_t u0 = float_bits(f);
  const uint32_t sign = (u0 >> 16) & 0x8000U;
  const uint32_t u = u0 & 0x7fffffffU;
  // Subnormal halves: let the FPU round by adding 0.5 (bits of the smallest normal half's ulp).
  const uint32_t denorm_magic = ((127 - 15) + (23 - 10) + 1) << 23;
  const uint32_t sub = float_bits(bits_float(u) + bits_float(denorm_magic)) - denorm_magic;
  const uint32_t norm = (u + ((15U - 127U) << 23) + 0xfffU + ((u >> 13) & 1U)) >> 13;
  const uint32_t inf_nan = u > 0x7f800000U ? 0x7e00U : 0x7c00U;
  uint32_t h = u < (113U << 23) ? sub : norm;
  h = u >= ((127U + 16U) << 23) ? inf_nan : h;
  return uint16_t(h | sign);
}
// fp16 bits -> float, exact for finite values (callers reject exponent 31 first).
MURMUR_HD float half_to_float(uint16_t h) {
  const float mag = bits_float(uint32_t(h & 0x7fffU) << 13) * 0x1p112f;
  return bits_float(float_bits(mag) | (uint32_t(h & 0x8000U) << 16));
}
MURMUR_HD bool half_is_finite(uint16_t h) { return (h & 0x7c00U) != 0x7c00U; }

// float -> bf16 bits, round to nearest even (finite inputs; overflow rounds to infinity).
MURMUR_HD uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  return uint16_t((u + 0x7fffU + ((u >> 16) & 1U)) >> 16);
}
MURMUR_HD float bf16_to_float(uint16_t b) { return bits_float(uint32_t(b) << 16); }
MURMUR_HD bool bf16_is_finite(uint16_t b) { return (b & 0x7f80U) != 0x7f80U; }

MURMUR_HD bool is_finite(float f) { return (float_bits(f) & 0x7f800000U) != 0x7f800000U; }

// The element-wise cast codecs: wire word, conversions, and which words are finite.
struct Fp32Cast {
  using Word = uint32_t;
  MURMUR_HD static Word from(float f) { return float_bits(f); }
  MURMUR_HD static float to(Word w) { return bits_float(w); }
  MURMUR_HD static bool finite(Word w) { return is_finite(bits_float(w)); }
};
struct Fp16Cast {
  using Word = uint16_t;
  MURMUR_HD static Word from(float f) { return float_to_half(f); }
  MURMUR_HD static float to(Word w) { return half_to_float(w); }
  MURMUR_HD static bool finite(Word w) { return half_is_finite(w); }
};
struct Bf16Cast {
  using Word = uint16_t;
  MURMUR_HD static Word from(float f) { return float_to_bf16(f); }
  MURMUR_HD static float to(Word w) { return bf16_to_float(w); }
  MURMUR_HD static bool finite(Word w) { return bf16_is_finite(w); }
};

// Quantiser codes: v = x * inv + offset rounded into [lo, hi]. For the mid-tread int8/int4
// quantiser offset = 0 and [lo, hi] = [-qmax, qmax]; for mid-rise int2 the caller halves x and
// offsets by qmax / 2 so codes land in [0, 3]. inv = qmax / absmax (0 for an all-zero block).
// inv is capped at FLT_MAX so that a block of tiny values cannot make it infinite.
MURMUR_HD float quant_inv(float absmax, float qmax) {
  const float inv = absmax > 0 ? qmax / absmax : 0.0f;
  return inv < 3.40282347e38f ? inv : 3.40282347e38f;
}
// Round to nearest even as an integer (|v| <= 2^22 here): v + 1.5 * 2^23 lies in [2^23, 2^24),
// where the ulp is 1, so the addition rounds away the fraction and the sum's bit pattern minus
// that of 1.5 * 2^23 is the rounded integer. No float-to-int conversion, so a NaN (rejected
// input) gives a harmless integer that the clamp bounds.
MURMUR_HD int32_t round_even_int(float v) {
  return int32_t(float_bits(v + 12582912.0f) - float_bits(12582912.0f));
}
MURMUR_HD int32_t clampi(int32_t v, int32_t lo, int32_t hi) {
  v = v > lo ? v : lo;
  return v < hi ? v : hi;
}
MURMUR_HD int quantise_nearest(float x, float inv, float offset, float lo, float hi) {
  return clampi(round_even_int(x * inv + offset), int32_t(lo), int32_t(hi));
}
// Unbiased stochastic rounding: floor(v) + [u < frac(v)], so E[code] = v up to 2^-24. Clamping
// the integer code gives the same result as clamping v first (v is within 1 of [lo, hi]), and
// all integer work keeps it free of mask-heavy float selects and of float-to-int casts.
MURMUR_HD int quantise_stochastic(float x, float inv, float offset, float lo, float hi, float u) {
  const float v = x * inv + offset;
  const int32_t r = round_even_int(v);
  const int32_t fl = r - int32_t(float(r) > v);  // floor(v)
  return clampi(fl + int32_t(u < v - float(fl)), int32_t(lo), int32_t(hi));
}

// The grid of the block quantisers. int8/int4 are mid-tread: levels -qmax..qmax with qmax =
// 2^(bits-1) - 1, two's complement codes. int2 and sign are mid-rise: code c in [0, 2^bits) is
// level 2c - qmax with qmax = 2^bits - 1, i.e. {-3,-1,1,3} and {-1,1}; codes are found by
// rounding x * mul * inv + add into [lo, hi].
struct QuantGrid {
  bool mid_rise;
  float qmax, mul, add, lo, hi;
};
MURMUR_HD constexpr QuantGrid quant_grid(int bits) {
  if (bits <= 2) {
    const float q = float((1 << bits) - 1);
    return {true, q, 0.5f, 0.5f * q, 0.0f, q};
  }
  // add = -0.0f, not 0.0f: adding -0 is the identity, which the compiler drops (adding +0 maps
  // -0 to +0, and both round to code 0, so the codes are the same).
  const float q = float((1 << (bits - 1)) - 1);
  return {false, q, 1.0f, -0.0f, -q, q};
}
MURMUR_HD float quant_level(uint32_t code, int bits) {
  return bits <= 2 ? 2.0f * float(code) - float((1 << bits) - 1)
                   : float(int32_t(code << (32 - bits)) >> (32 - bits));
}

// Decoded value of one element, the same expression on every device: out + alpha * (level * scale).
MURMUR_HD float accumulate(float out, float alpha, float level, float scale) {
  return out + alpha * (level * scale);
}

// Canonical summation order for per-block sums (sign's mean |x|), matching a CUDA warp:
// lane l sums elements l, l+32, l+64, ... in order, then lanes fold pairwise by halves.
inline constexpr int kSumLanes = 32;
// One halving step per template instance, so every loop has a constant trip count and the
// CPU kernels keep the lanes in vector registers.
template <int kOff = kSumLanes / 2>
MURMUR_HD float fold_lanes(float* lane) {
  for (int l = 0; l < kOff; ++l) lane[l] += lane[l + kOff];
  if constexpr (kOff > 1) {
    return fold_lanes<kOff / 2>(lane);
  } else {
    return lane[0];
  }
}

}  // namespace murmur::compress::math

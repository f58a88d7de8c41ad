// Block-scaled quantisation: int8 / int4 / int2 and sign (1 bit). One kernel template
// serves all four; a block's codes are computed into a small array, then packed
// LSB-first into bytes.
//
// Body: u32 block, u8 flags (bit 0: stochastic rounding was used), u8 0, u16 0,
//       f32 scale[ceil(n / block)], u8 codes[ceil(n * bits / 8)].
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "compress/codec_math.h"
#include "compress/codecs.h"
#include "compress/parallel.h"

namespace murmur::compress {
namespace {

enum class Rule { kNearest, kStochastic, kSign };

size_t packed_bytes(size_t n, int bits) { return (n * size_t(bits) + 7) / 8; }

// Blocks per parallel chunk (about kParallelGrain elements).
size_t block_grain(size_t block) { return std::max<size_t>(1, kParallelGrain / block); }

// The grid is math::quant_grid; with deterministic rounding the mid-rise int2 and sign take
// the least-squares scale <x, level> / <level, level> (for sign: mean |x|), which makes them
// contractive; otherwise the scale is absmax / qmax.
template <int kBits, Rule kRule>
struct BlockQuant {
  static constexpr int kPer = 8 / kBits;
  static constexpr math::QuantGrid kGrid = math::quant_grid(kBits);
  static constexpr bool kFitScale = kGrid.mid_rise && kRule != Rule::kStochastic;

  MURMUR_INLINE static float level(uint32_t code) { return math::quant_level(code, kBits); }

  // Encodes one block of `bs` elements (zero-padded past `len`) starting at global index
  // `first`. Returns false if the block holds a non-finite value.
  MURMUR_INLINE static bool encode(const float* __restrict x, size_t bs, size_t len, uint64_t first, uint32_t key,
                     float& scale, int8_t* __restrict codes, uint8_t* __restrict packed) {
    uint32_t bad = 0;
#pragma omp simd reduction(| : bad)
    for (size_t i = 0; i < bs; ++i) bad |= uint32_t(!math::is_finite(x[i]));
    if (kRule == Rule::kSign) {
#pragma omp simd
      for (size_t i = 0; i < bs; ++i) codes[i] = int8_t(1 - (math::float_bits(x[i]) >> 31));
    } else {
      float absmax = 0;
#pragma omp simd reduction(max : absmax)
      for (size_t i = 0; i < bs; ++i) {
        const float a = std::fabs(x[i]);
        absmax = absmax < a ? a : absmax;
      }
      scale = absmax / kGrid.qmax;
      const float inv = math::quant_inv(absmax, kGrid.qmax);
      constexpr math::QuantGrid g = kGrid;
      if (kRule == Rule::kStochastic) {
#pragma omp simd
        for (size_t i = 0; i < bs; ++i) {
          const float u = math::uniform24(math::element_bits(key, first + i));
          codes[i] = int8_t(math::quantise_stochastic(x[i] * g.mul, inv, g.add, g.lo, g.hi, u));
        }
      } else {
#pragma omp simd
        for (size_t i = 0; i < bs; ++i) codes[i] = int8_t(math::quantise_nearest(x[i] * g.mul, inv, g.add, g.lo, g.hi));
      }
    }
    if (kFitScale) scale = fit_scale(x, len, codes);
    pack(codes, bs / kPer, packed);
    return bad == 0 && math::is_finite(scale);
  }

  // Least-squares scale <x, level> / <level, level> over the block's `len` elements, the
  // numerator summed in the canonical lane order (math::fold_lanes) so devices agree.
  MURMUR_INLINE static float fit_scale(const float* __restrict x, size_t len, const int8_t* __restrict codes) {
    constexpr size_t kL = math::kSumLanes;
    float lane[kL] = {};
    uint32_t sq = 0;  // <level, level>: an integer, so no summation order to keep
    const size_t full = len / kL * kL;
    for (size_t j = 0; j < full; j += kL) {
#pragma omp simd reduction(+ : sq)
      for (size_t l = 0; l < kL; ++l) {
        const int32_t lv = 2 * int32_t(uint8_t(codes[j + l])) - int32_t(kGrid.qmax);  // mid-rise level
        lane[l] += x[j + l] * float(lv);
        sq += uint32_t(lv * lv);
      }
    }
    for (size_t l = 0; l < len - full; ++l) {
      const int32_t lv = 2 * int32_t(uint8_t(codes[full + l])) - int32_t(kGrid.qmax);
      lane[l] += x[full + l] * float(lv);
      sq += uint32_t(lv * lv);
    }
    return len == 0 ? 0.0f : math::fold_lanes(lane) / float(sq);
  }

  MURMUR_INLINE static void pack(const int8_t* __restrict codes, size_t nbytes, uint8_t* __restrict packed) {
    constexpr uint32_t kMask = (1U << kBits) - 1;
    for (size_t t = 0; t < nbytes; ++t) {
      uint32_t b = 0;
      for (int j = 0; j < kPer; ++j) b |= (uint32_t(uint8_t(codes[t * kPer + j])) & kMask) << (j * kBits);
      packed[t] = uint8_t(b);
    }
  }

  MURMUR_INLINE static void unpack(const uint8_t* __restrict packed, size_t nbytes, float* __restrict lv) {
    for (size_t t = 0; t < nbytes; ++t) {
      const uint32_t b = packed[t];
      for (int j = 0; j < kPer; ++j) lv[t * kPer + j] = level((b >> (j * kBits)) & ((1U << kBits) - 1));
    }
  }

  MURMUR_INLINE static void apply(const float* __restrict lv, size_t len, float scale, float alpha, float* __restrict out) {
#pragma omp simd
    for (size_t i = 0; i < len; ++i) out[i] = math::accumulate(out[i], alpha, lv[i], scale);
  }
};

struct QuantJob {
  const float* x;
  size_t n, bs;
  uint32_t key;
  uint8_t* scales;
  uint8_t* codes;
};

// kBs > 0: the block size as a compile-time constant (fully unrolled block loops); 0: runtime.
template <int kBits, Rule kRule, size_t kBs>
MURMUR_SIMD_CLONES bool encode_blocks(const QuantJob& job, size_t b0, size_t b1) {
  using Q = BlockQuant<kBits, kRule>;
  const size_t bs = kBs != 0 ? kBs : job.bs, block_bytes = bs * kBits / 8;
  std::vector<int8_t> codes(bs);
  bool ok = true;
  for (size_t b = b0; b < b1; ++b) {
    const size_t first = b * bs, len = std::min(bs, job.n - first);
    float scale;
    if (len == bs) {
      ok = Q::encode(job.x + first, bs, bs, first, job.key, scale, codes.data(), job.codes + b * block_bytes) && ok;
    } else {  // the short last block: zero-pad, pack into a scratch, copy the used bytes
      std::vector<float> padded(bs, 0.0f);
      std::vector<uint8_t> packed(block_bytes);
      std::memcpy(padded.data(), job.x + first, len * sizeof(float));
      ok = Q::encode(padded.data(), bs, len, first, job.key, scale, codes.data(), packed.data()) && ok;
      std::memcpy(job.codes + b * block_bytes, packed.data(), packed_bytes(len, kBits));
    }
    store_f32(job.scales + 4 * b, scale);
  }
  return ok;
}

struct DequantJob {
  const uint8_t* scales;
  const uint8_t* codes;
  size_t n, bs;
  float alpha;
  float* out;
};

template <int kBits, Rule kRule, size_t kBs>
MURMUR_SIMD_CLONES bool decode_blocks(const DequantJob& job, size_t b0, size_t b1) {
  using Q = BlockQuant<kBits, kRule>;
  const size_t bs = kBs != 0 ? kBs : job.bs, block_bytes = bs * kBits / 8;
  std::vector<float> level(bs);
  for (size_t b = b0; b < b1; ++b) {
    const size_t first = b * bs, len = std::min(bs, job.n - first);
    const float scale = load_f32(job.scales + 4 * b);
    if (len == bs) {
      Q::unpack(job.codes + b * block_bytes, block_bytes, level.data());
      Q::apply(level.data(), bs, scale, job.alpha, job.out + first);
    } else {
      std::vector<uint8_t> padded(block_bytes, 0);
      std::memcpy(padded.data(), job.codes + b * block_bytes, packed_bytes(len, kBits));
      Q::unpack(padded.data(), block_bytes, level.data());
      Q::apply(level.data(), len, scale, job.alpha, job.out + first);
    }
  }
  return true;
}

using EncodeFn = bool (*)(const QuantJob&, size_t, size_t);
using DecodeFn = bool (*)(const DequantJob&, size_t, size_t);
struct Kernels {
  EncodeFn encode;
  DecodeFn decode;
};

template <int kBits, Rule kEnc, Rule kDec>
Kernels kernels_for(size_t bs) {
  switch (bs) {
    case 64: return {encode_blocks<kBits, kEnc, 64>, decode_blocks<kBits, kDec, 64>};
    case 256: return {encode_blocks<kBits, kEnc, 256>, decode_blocks<kBits, kDec, 256>};
    default: return {encode_blocks<kBits, kEnc, 0>, decode_blocks<kBits, kDec, 0>};
  }
}

Kernels kernels(CodecId id, bool stochastic, size_t bs) {
  switch (id) {
    case CodecId::kInt8:
      return stochastic ? kernels_for<8, Rule::kStochastic, Rule::kNearest>(bs)
                        : kernels_for<8, Rule::kNearest, Rule::kNearest>(bs);
    case CodecId::kInt4:
      return stochastic ? kernels_for<4, Rule::kStochastic, Rule::kNearest>(bs)
                        : kernels_for<4, Rule::kNearest, Rule::kNearest>(bs);
    case CodecId::kInt2:
      return stochastic ? kernels_for<2, Rule::kStochastic, Rule::kNearest>(bs)
                        : kernels_for<2, Rule::kNearest, Rule::kNearest>(bs);
    default:
      return kernels_for<1, Rule::kSign, Rule::kSign>(bs);
  }
}

}  // namespace

void encode_quant(const CodecSpec& spec, std::span<const float> x, uint64_t seed, ByteWriter& w) {
  const int bits = quant_bits(spec.codec);
  const size_t n = x.size(), bs = spec.block, nb = (n + bs - 1) / bs;
  w.u32(spec.block);
  w.u8(spec.stochastic ? 1 : 0);
  w.u8(0);
  w.u16(0);
  uint8_t* scales = w.extend(4 * nb + packed_bytes(n, bits));
  QuantJob job{x.data(), n, bs, math::stream_key(seed, math::kStreamRounding), scales, scales + 4 * nb};
  const EncodeFn enc = kernels(spec.codec, spec.stochastic, bs).encode;
  const bool ok = parallel_chunks(nb, block_grain(bs), [&](size_t b0, size_t b1) { return enc(job, b0, b1); });
  if (!ok) throw_nonfinite_input(codec_name(spec.codec));
}

QuantBody parse_quant(CodecId id, ByteReader& r, size_t n) {
  const int bits = quant_bits(id);
  const char* name = codec_name(id);
  QuantBody q;
  q.block = r.u32("block size");
  if (q.block < 8 || q.block > 65536 || q.block % 8 != 0) {
    throw DecodeError(std::string(name) + " block size " + std::to_string(q.block) +
                      " is not a multiple of 8 in [8, 65536]");
  }
  const uint8_t flags = r.u8("flags");
  if (flags > (id == CodecId::kSign ? 0 : 1)) throw DecodeError(std::string(name) + ": unknown flags");
  if (r.u8("reserved") != 0 || r.u16("reserved") != 0) {
    throw DecodeError(std::string(name) + ": reserved field is not zero");
  }
  const size_t nb = (n + q.block - 1) / q.block;
  q.scales = r.bytes(4 * uint64_t(nb), "scales");
  q.codes = r.bytes(packed_bytes(n, bits), "codes");
  r.expect_end(name);

  // Every decoded value level * scale must be finite: |level| <= 2^(bits-1) (mid-tread) or
  // 2^bits - 1 (mid-rise int2/sign).
  const float max_level = bits <= 2 ? float((1 << bits) - 1) : float(1 << (bits - 1));
  const float max_scale = std::numeric_limits<float>::max() / max_level;
  const bool scales_ok = parallel_chunks(nb, kParallelGrain, [&](size_t b0, size_t b1) {
    uint32_t bad = 0;
    for (size_t b = b0; b < b1; ++b) {
      const float s = load_f32(q.scales.data() + 4 * b);
      bad |= uint32_t(!(s >= 0.0f && s <= max_scale));
    }
    return bad == 0;
  });
  if (!scales_ok) throw DecodeError(std::string(name) + " payload has a negative, non-finite or huge scale");
  return q;
}

void decode_quant(CodecId id, ByteReader& r, const Sink& sink) {
  const size_t n = sink.out.size();
  const QuantBody q = parse_quant(id, r, n);
  sink.begin();
  DequantJob job{q.scales.data(), q.codes.data(), n, q.block, sink.alpha, sink.out.data()};
  const DecodeFn dec = kernels(id, false, q.block).decode;
  parallel_chunks(q.scales.size() / 4, block_grain(q.block), [&](size_t b0, size_t b1) { return dec(job, b0, b1); });
}

}  // namespace murmur::compress

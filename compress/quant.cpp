// Block-scaled quantisation: int8 / int4 / int2 and sign (1 bit). One kernel template
// serves all four; codes are computed one byte each into a small array, then packed
// LSB-first into bytes.
//
// Body: u32 block, u8 flags (bit 0: stochastic rounding was used), u8 0, u16 0,
//       f32 scale[ceil(n / block)], u8 codes[ceil(n * bits / 8)].
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
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

// math::fold_lanes (lane l += lane l + off for off = 16, 8, ..., 1) on GCC vector types, so the
// lanes stay in vector registers (plain arrays got scalarised). 8-lane vectors: the lanes are
// read right after the kernel's 256-bit stores, and wider loads would stall store forwarding.
MURMUR_INLINE float fold_lanes(const float* lane) {
  static_assert(math::kSumLanes == 32);
  using V8 = float __attribute__((vector_size(32)));
  using V4 = float __attribute__((vector_size(16)));
  V8 v[4];
  std::memcpy(v, lane, sizeof v);
  const V8 h8 = (v[0] + v[2]) + (v[1] + v[3]);  // off 16, off 8
  const V4 h4 =
      __builtin_shufflevector(h8, h8, 0, 1, 2, 3) + __builtin_shufflevector(h8, h8, 4, 5, 6, 7);  // off 4
  const V4 h2 = h4 + __builtin_shufflevector(h4, h4, 2, 3, 2, 3);                                 // off 2
  return h2[0] + h2[1];                                                                           // off 1
}

// The grid is math::quant_grid; with deterministic rounding the mid-rise int2 and sign take
// the least-squares scale <x, level> / <level, level> (for sign: mean |x|), which makes them
// contractive; otherwise the scale is absmax / qmax.
//
// A block is encoded in two passes over its floats (which stay in L1): absmax and the finite
// check, then the codes, one byte each, with the least-squares numerator in the same loop; the
// code bytes are then packed 8 at a time in 64-bit words. Every loop is plain element-wise work
// in 32-bit lanes, so it vectorises; blocks go through each step in groups (encode_group).
template <int kBits, Rule kRule>
struct BlockQuant {
  static constexpr math::QuantGrid kGrid = math::quant_grid(kBits);
  static constexpr bool kFitScale = kGrid.mid_rise && kRule != Rule::kStochastic;
  static constexpr uint32_t kMask = (1U << kBits) - 1;
  // 8 packed codes.
  using Word = std::conditional_t<kBits == 1, uint8_t, std::conditional_t<kBits == 2, uint16_t, uint32_t>>;
  // Blocks are processed in groups of about kGroupElems elements (see encode_group).
  static constexpr size_t kGroupElems = 4096, kMaxGroup = kGroupElems / 8;
  MURMUR_INLINE static size_t group_blocks(size_t bs) { return std::max<size_t>(1, kGroupElems / bs); }

  // Per-thread scratch of one group of blocks: the code bytes (as 64-bit words, which pack()
  // reads) and the packed words.
  struct Scratch {
    explicit Scratch(size_t elems) : codes(kBits < 8 ? elems / 8 : 0), words(kBits < 8 ? elems / 8 : 0) {}
    std::vector<uint64_t> codes;
    std::vector<Word> words;
  };

  MURMUR_INLINE static float level(uint32_t code) { return math::quant_level(code, kBits); }

  // The code of x; `bits` are the element's random bits (stochastic rounding only).
  MURMUR_INLINE static int code(float x, float inv, uint32_t bits) {
    constexpr math::QuantGrid g = kGrid;
    if constexpr (kRule == Rule::kSign) {
      return int(1 - (math::float_bits(x) >> 31));
    } else if constexpr (kRule == Rule::kStochastic) {
      return math::quantise_stochastic(x * g.mul, inv, g.add, g.lo, g.hi, math::uniform24(bits));
    } else {
      return math::quantise_nearest(x * g.mul, inv, g.add, g.lo, g.hi);
    }
  }

  // |x| as bits orders like |x|, and every non-finite pattern lies above every finite one: one
  // integer max gives both the block's absmax and its finite check.
  MURMUR_INLINE static uint32_t max_abs_bits(const float* __restrict x, size_t bs) {
    uint32_t maxbits = 0;
#pragma omp simd reduction(max : maxbits)
    for (size_t i = 0; i < bs; ++i) {
      const uint32_t a = math::float_bits(x[i]) & 0x7fffffffU;
      maxbits = maxbits < a ? a : maxbits;
    }
    return maxbits;
  }

  // Writes the code bytes of one block of `bs` elements starting at global index `first` to c.
  // Stochastic rounding draws element_bits(key, first + i), which is hash32((lo + i) ^
  // element_key(key, first)) while the low word lo + i does not wrap: in every block but one per
  // 2^32 elements, so only that one pays for the carry (element_bits_at).
  MURMUR_INLINE static void encode_codes(const float* __restrict x, size_t bs, uint64_t first, uint32_t key,
                                         float inv, uint8_t* __restrict c) {
    const uint32_t lo = uint32_t(first), k = math::element_key(key, first);
    if (kRule != Rule::kStochastic || lo <= UINT32_MAX - uint32_t(bs - 1)) {
#pragma omp simd
      for (size_t i = 0; i < bs; ++i) {
        c[i] = uint8_t(uint32_t(code(x[i], inv, math::hash32((lo + uint32_t(i)) ^ k))) & kMask);
      }
    } else {
#pragma omp simd
      for (size_t i = 0; i < bs; ++i) {
        c[i] = uint8_t(uint32_t(code(x[i], inv, math::element_bits_at(key, first, uint32_t(i)))) & kMask);
      }
    }
  }

  // Encodes m <= kMaxGroup consecutive blocks at x (all full but the last, which holds
  // `last_len` elements and is zero-padded) starting at global index `first`, writing m scales
  // and m packed blocks. Each step runs over the whole group, so the blocks' reductions and
  // divisions overlap instead of forming one long dependency chain per block, and packing
  // reads code bytes stored long before (a load right after narrower stores of the same bytes
  // would stall store forwarding). Returns false if a block holds a non-finite value.
  MURMUR_INLINE static bool encode_group(const float* __restrict x, size_t m, size_t bs, size_t last_len,
                                         uint64_t first, uint32_t key, Scratch& scratch,
                                         uint8_t* __restrict scales, uint8_t* __restrict packed) {
    uint32_t maxbits[kMaxGroup];
    float inv[kMaxGroup];
    for (size_t j = 0; j < m; ++j) maxbits[j] = max_abs_bits(x + j * bs, bs);
    for (size_t j = 0; j < m; ++j) {
      inv[j] = kRule == Rule::kSign ? 0.0f : math::quant_inv(math::bits_float(maxbits[j]), kGrid.qmax);
    }
    // int8's code bytes are its packed bytes.
    uint8_t* __restrict c = kBits == 8 ? packed : reinterpret_cast<uint8_t*>(scratch.codes.data());
    float scale[kMaxGroup];
    if constexpr (kFitScale) {  // least-squares scale num / den, the divisions after all the sums
      float num[kMaxGroup], den[kMaxGroup];
      for (size_t j = 0; j < m; ++j) num[j] = fit_codes(x + j * bs, bs, inv[j], c + j * bs);
      for (size_t j = 0; j < m; ++j) den[j] = level_square_sum(c + j * bs, bs);
      den[m - 1] -= float(bs - last_len);  // the padding's level +1 (exact: small integers)
      for (size_t j = 0; j < m; ++j) scale[j] = num[j] / den[j];
    } else {
      for (size_t j = 0; j < m; ++j) encode_codes(x + j * bs, bs, first + j * bs, key, inv[j], c + j * bs);
      for (size_t j = 0; j < m; ++j) scale[j] = math::bits_float(maxbits[j]) / kGrid.qmax;
    }
    uint32_t bad = 0;
    for (size_t j = 0; j < m; ++j) {
      store_f32(scales + 4 * j, scale[j]);
      bad |= uint32_t(maxbits[j] >= 0x7f800000U) | uint32_t(!math::is_finite(scale[j]));
    }
    if constexpr (kBits < 8) {
      pack(scratch.codes.data(), m * bs / 8, scratch.words.data());
      std::memcpy(packed, scratch.words.data(), m * bs / 8 * sizeof(Word));
    }
    return bad == 0;
  }

  // Writes the codes of a mid-rise block and returns its least-squares numerator <x, level>,
  // summed in the canonical lane order (math::fold_lanes) so devices agree. Zero padding codes
  // as level +1 (int2: code 2, sign: +0); its +-0 products leave the lanes unchanged (a lane
  // sum is never -0).
  MURMUR_INLINE static float fit_codes(const float* __restrict x, size_t bs, float inv,
                                       uint8_t* __restrict c) {
    constexpr size_t kL = math::kSumLanes;
    float num[kL] = {};
    const size_t full = bs / kL * kL;
    for (size_t j = 0; j < full; j += kL) fit_step(x + j, kL, inv, num, c + j);
    if (full < bs) fit_step(x + full, bs - full, inv, num, c + full);
    return fold_lanes(num);
  }
  // Codes of m <= kSumLanes elements, element l added to lane l. Callers pass m = kSumLanes for
  // all but a block's tail, so the loop has a constant trip count and vectorises.
  MURMUR_INLINE static void fit_step(const float* __restrict x, size_t m, float inv, float* __restrict num,
                                     uint8_t* __restrict c) {
#pragma omp simd
    for (size_t l = 0; l < m; ++l) {
      const int k = code(x[l], inv, 0);
      c[l] = uint8_t(k);
      num[l] += x[l] * float(2 * k - int(kGrid.qmax));
    }
  }
  // <level, level> of a mid-rise block of bs codes (an integer, exact in float): 1 per element,
  // plus 8 for each int2 code 0 or 3 (level -3 or 3), i.e. each code byte whose two bits are
  // equal. Those flags (bit 0 of each byte) are summed bytewise over up to 31 words, so no
  // byte exceeds 31 and their total (at most 248) fits the multiply that adds the 8 bytes.
  MURMUR_INLINE static float level_square_sum(const uint8_t* __restrict c, size_t bs) {
    constexpr uint64_t kBytes = 0x0101010101010101ULL;
    uint32_t outer = 0;
    if constexpr (kBits == 2) {
      for (size_t w0 = 0; w0 < bs / 8; w0 += 31) {
        uint64_t flags = 0;
        for (size_t w = w0; w < std::min(bs / 8, w0 + 31); ++w) {
          uint64_t v;
          std::memcpy(&v, c + 8 * w, 8);
          flags += ~(v ^ (v >> 1)) & kBytes;
        }
        outer += uint32_t((flags * kBytes) >> 56);
      }
    }
    return float(bs + 8 * outer);
  }

  // Packs code bytes (each < 2^kBits) LSB-first: 8 codes per 64-bit word, adjacent fields
  // merged pairwise (8 fields of 8 bits -> 4 of 16 -> 2 of 32 -> 1 of 64), leaving the
  // 8 * kBits packed bits at the bottom of the word. Typed arrays in and out (no byte-wise
  // access) so the loop vectorises.
  MURMUR_INLINE static void pack(const uint64_t* __restrict c, size_t words, Word* __restrict out) {
    static_assert(std::endian::native == std::endian::little, "code bytes are read as little-endian words");
#pragma omp simd
    for (size_t w = 0; w < words; ++w) {
      uint64_t v = c[w];
      v = (v | (v >> (8 - kBits))) & field_mask(16, 2 * kBits);
      v = (v | (v >> (16 - 2 * kBits))) & field_mask(32, 4 * kBits);
      v = (v | (v >> (32 - 4 * kBits))) & field_mask(64, 8 * kBits);
      out[w] = Word(v);
    }
  }
  // The low `bits` bits of every `width`-bit field of a 64-bit word.
  static constexpr uint64_t field_mask(int width, int bits) {
    uint64_t m = 0;
    for (int at = 0; at < 64; at += width) m |= ((1ULL << bits) - 1) << at;
    return m;
  }

  // The inverse of pack(): spreads each word's 8 codes back to one byte each (scratch.codes).
  MURMUR_INLINE static void unpack(const uint8_t* __restrict packed, size_t words, Scratch& scratch) {
    std::memcpy(scratch.words.data(), packed, words * sizeof(Word));
    const Word* __restrict w = scratch.words.data();
    uint64_t* __restrict c = scratch.codes.data();
#pragma omp simd
    for (size_t i = 0; i < words; ++i) {
      uint64_t v = w[i];
      v = (v | (v << (32 - 4 * kBits))) & field_mask(32, 4 * kBits);
      v = (v | (v << (16 - 2 * kBits))) & field_mask(16, 2 * kBits);
      v = (v | (v << (8 - kBits))) & field_mask(8, kBits);
      c[i] = v;
    }
  }

  // out[i] += alpha * (level(code i) * scale) over the block's first `len` elements.
  MURMUR_INLINE static void apply(const uint8_t* __restrict c, size_t len, float scale, float alpha,
                                  float* __restrict out) {
#pragma omp simd
    for (size_t i = 0; i < len; ++i) out[i] = math::accumulate(out[i], alpha, level(c[i]), scale);
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
  const size_t bs = kBs != 0 ? kBs : job.bs, block_bytes = bs * kBits / 8, group = Q::group_blocks(bs);
  typename Q::Scratch scratch(group * bs);
  const size_t full_end = std::min(b1, job.n / bs);  // blocks before it are full
  bool ok = true;
  for (size_t g = b0; g < full_end; g += group) {
    const size_t m = std::min(group, full_end - g);
    ok = Q::encode_group(job.x + g * bs, m, bs, bs, g * bs, job.key, scratch, job.scales + 4 * g,
                         job.codes + g * block_bytes) &&
         ok;
  }
  if (full_end < b1) {  // the short last block: zero-pad, pack into a scratch, copy the used bytes
    const size_t first = full_end * bs, len = job.n - first;
    std::vector<float> padded(bs, 0.0f);
    std::vector<uint8_t> packed(block_bytes);
    std::memcpy(padded.data(), job.x + first, len * sizeof(float));
    ok = Q::encode_group(padded.data(), 1, bs, len, first, job.key, scratch, job.scales + 4 * full_end,
                         packed.data()) &&
         ok;
    std::memcpy(job.codes + full_end * block_bytes, packed.data(), packed_bytes(len, kBits));
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
  const size_t bs = kBs != 0 ? kBs : job.bs, block_bytes = bs * kBits / 8, group = Q::group_blocks(bs);
  typename Q::Scratch scratch(group * bs);
  std::vector<uint8_t> padded;  // a group ending in a short block, zero-padded to whole blocks
  // Whole groups are unpacked before any is applied, as in encode_group (store forwarding).
  for (size_t g = b0; g < b1; g += group) {
    const size_t m = std::min(group, b1 - g), first = g * bs, len = std::min(m * bs, job.n - first);
    const uint8_t* packed = job.codes + g * block_bytes;
    if (len < m * bs) {
      padded.assign(m * block_bytes, 0);
      std::memcpy(padded.data(), packed, packed_bytes(len, kBits));
      packed = padded.data();
    }
    const uint8_t* codes = packed;  // int8's packed bytes are its codes
    if constexpr (kBits < 8) {
      Q::unpack(packed, m * bs / 8, scratch);
      codes = reinterpret_cast<const uint8_t*>(scratch.codes.data());
    }
    for (size_t j = 0; j < m; ++j) {
      Q::apply(codes + j * bs, std::min(bs, len - j * bs), load_f32(job.scales + 4 * (g + j)), job.alpha,
               job.out + first + j * bs);
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
    case 64:
      return {encode_blocks<kBits, kEnc, 64>, decode_blocks<kBits, kDec, 64>};
    case 256:
      return {encode_blocks<kBits, kEnc, 256>, decode_blocks<kBits, kDec, 256>};
    default:
      return {encode_blocks<kBits, kEnc, 0>, decode_blocks<kBits, kDec, 0>};
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
  const bool ok =
      parallel_chunks(nb, block_grain(bs), [&](size_t b0, size_t b1) { return enc(job, b0, b1); });
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
  parallel_chunks(q.scales.size() / 4, block_grain(q.block),
                  [&](size_t b0, size_t b1) { return dec(job, b0, b1); });
}

}  // namespace murmur::compress

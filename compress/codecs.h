// Internal interface between the dispatcher (codec.cpp) and the codec families.
// Each encode_* writes its parameters and data after the common header; each
// decode_* reads them back, validates everything, then calls sink.begin() and
// only then touches the output, so a rejected payload leaves it unchanged.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "compress/codec.h"
#include "compress/codec_spec.h"
#include "compress/wire.h"

namespace murmur::compress {

struct Sink {
  std::span<float> out;
  float alpha;     // out += alpha * D(payload)
  bool overwrite;  // out is zeroed first (decode) instead of accumulated into
  void begin() const {
    if (overwrite) std::fill(out.begin(), out.end(), 0.0f);
  }
};

[[noreturn]] void throw_nonfinite_input(const char* codec);
bool all_finite(std::span<const float> x);

// fp32 / fp16 / bf16 (float_codec.cpp)
void encode_float(CodecId id, std::span<const float> x, ByteWriter& w);
void decode_float(CodecId id, ByteReader& r, const Sink& sink);
// int8 / int4 / int2 / sign (quant.cpp)
void encode_quant(const CodecSpec& spec, std::span<const float> x, uint64_t seed, ByteWriter& w);
void decode_quant(CodecId id, ByteReader& r, const Sink& sink);
// topk / randk (sparse.cpp)
void encode_topk(const CodecSpec& spec, std::span<const float> x, uint64_t seed, ByteWriter& w);
void decode_topk(ByteReader& r, const Sink& sink);
void encode_randk(const CodecSpec& spec, std::span<const float> x, uint64_t seed, ByteWriter& w);
void decode_randk(ByteReader& r, const Sink& sink);

// Parsed and validated bodies, shared by the CPU decoders and the CUDA path (which then only
// applies them). Spans point into the payload.
struct QuantBody {
  uint32_t block = 0;
  std::span<const uint8_t> scales, codes;  // scales checked: finite, >= 0, no overflow
};
QuantBody parse_quant(CodecId id, ByteReader& r, size_t n);
// fp32/fp16/bf16 values (not yet checked for NaN/Inf: that is a pass over all of them).
std::span<const uint8_t> parse_float(CodecId id, ByteReader& r, size_t n);
struct SparseBody {
  std::vector<uint64_t> idx;      // topk: decoded and checked; randk: empty (from the seed)
  std::span<const uint8_t> vals;  // f32 values, checked finite once scaled
  float scale = 1.0f;             // randk: 2^32 / threshold unless unscaled
  uint64_t seed = 0;              // randk
  uint32_t threshold = 0;         // randk
};
SparseBody parse_topk(ByteReader& r, size_t n);
SparseBody parse_randk(ByteReader& r, size_t n);

// Shared by the CPU and CUDA encoders of topk and randk (sparse.cpp).
uint64_t topk_count(double fraction, size_t n);
uint32_t randk_threshold(double fraction);
// Start positions of the sampled 16-element runs for topk's threshold estimate.
inline constexpr size_t kSampleRun = 16;
std::vector<uint64_t> sample_runs(size_t n, uint64_t seed, double fraction);
// The magnitude above which about `share` of the sampled magnitudes lie (reorders s).
float sample_threshold(std::vector<float>& s, double share);
// Exact topk from candidates (indices in order and their values) that hold the k largest.
std::vector<uint64_t> pick_largest(std::span<const uint64_t> cand, std::span<const float> vals, uint64_t k);
void write_topk(std::span<const uint64_t> idx, std::span<const float> x_at_idx, bool approx, ByteWriter& w);
void write_randk(uint64_t seed, uint32_t threshold, bool unscaled, std::span<const float> vals, ByteWriter& w);
// powersgd (powersgd.cpp); `warm` holds the per-matrix Q factors between rounds.
void encode_powersgd(const CodecSpec& spec, std::span<const float> x, std::span<const MatrixView> layout,
                     uint64_t seed, std::vector<std::vector<float>>& warm, ByteWriter& w);
void decode_powersgd(ByteReader& r, const Sink& sink);

// Encodes/decodes one codec's body (after the header); used for PowerSGD's fallback part.
void encode_body(const CodecSpec& spec, std::span<const float> x, uint64_t seed, ByteWriter& w);
void decode_body(CodecId id, ByteReader& r, const Sink& sink);

}  // namespace murmur::compress

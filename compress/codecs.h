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
// powersgd (powersgd.cpp); `warm` holds the per-matrix Q factors between rounds.
void encode_powersgd(const CodecSpec& spec, std::span<const float> x, std::span<const MatrixView> layout,
                     uint64_t seed, std::vector<std::vector<float>>& warm, ByteWriter& w);
void decode_powersgd(ByteReader& r, const Sink& sink);

// Encodes/decodes one codec's body (after the header); used for PowerSGD's fallback part.
void encode_body(const CodecSpec& spec, std::span<const float> x, uint64_t seed, ByteWriter& w);
void decode_body(CodecId id, ByteReader& r, const Sink& sink);

}  // namespace murmur::compress

// Dispatch from codec ids to the codec families, and the public entry points.
#include "compress/codec.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "compress/codec_math.h"
#include "compress/codecs.h"
#include "compress/parallel.h"

namespace murmur::compress {

void throw_nonfinite_input(const char* codec) {
  throw std::domain_error(std::string(codec) +
                          " encode: input holds NaN or infinity (or a value beyond the codec's range)");
}

namespace {
MURMUR_SIMD_CLONES bool finite_range(const float* __restrict x, size_t n) {
  uint32_t bad = 0;
#pragma omp simd reduction(| : bad)
  for (size_t i = 0; i < n; ++i) bad |= uint32_t(!math::is_finite(x[i]));
  return bad == 0;
}
}  // namespace

bool all_finite(std::span<const float> x) {
  return parallel_chunks(x.size(), kParallelGrain,
                         [&](size_t b, size_t e) { return finite_range(x.data() + b, e - b); });
}

void encode_body(const CodecSpec& spec, std::span<const float> x, uint64_t seed, ByteWriter& w) {
  switch (spec.codec) {
    case CodecId::kFp32:
    case CodecId::kFp16:
    case CodecId::kBf16: return encode_float(spec.codec, x, w);
    case CodecId::kInt8:
    case CodecId::kInt4:
    case CodecId::kInt2:
    case CodecId::kSign: return encode_quant(spec, x, seed, w);
    case CodecId::kTopk: return encode_topk(spec, x, seed, w);
    case CodecId::kRandk: return encode_randk(spec, x, seed, w);
    case CodecId::kPowerSgd: break;
  }
  throw std::logic_error("encode_body: powersgd needs its encoder state");
}

void decode_body(CodecId id, ByteReader& r, const Sink& sink) {
  switch (id) {
    case CodecId::kFp32:
    case CodecId::kFp16:
    case CodecId::kBf16: return decode_float(id, r, sink);
    case CodecId::kInt8:
    case CodecId::kInt4:
    case CodecId::kInt2:
    case CodecId::kSign: return decode_quant(id, r, sink);
    case CodecId::kTopk: return decode_topk(r, sink);
    case CodecId::kRandk: return decode_randk(r, sink);
    case CodecId::kPowerSgd: return decode_powersgd(r, sink);
  }
  throw DecodeError("unknown codec id");
}

void Encoder::encode(std::span<const float> x, const EncodeOptions& opt, std::vector<uint8_t>& payload) {
  ByteWriter w(payload);
  write_header(w, spec_.codec, x.size());
  if (spec_.codec == CodecId::kPowerSgd) {
    encode_powersgd(spec_, x, opt.layout, opt.seed, warm_, w);
  } else {
    encode_body(spec_, x, opt.seed, w);
  }
  w.finish();
}

std::vector<uint8_t> Encoder::encode(std::span<const float> x, const EncodeOptions& opt) {
  std::vector<uint8_t> payload;
  encode(x, opt, payload);
  return payload;
}

namespace {
void decode_into(std::span<const uint8_t> payload, const Sink& sink) {
  ByteReader r(payload);
  const Header h = read_header(r, sink.out.size());
  decode_body(h.codec, r, sink);
}
}  // namespace

void decode_accumulate(std::span<const uint8_t> payload, std::span<float> out, float alpha) {
  if (!std::isfinite(alpha)) throw std::invalid_argument("decode_accumulate: alpha is not finite");
  decode_into(payload, Sink{out, alpha, false});
}

void decode(std::span<const uint8_t> payload, std::span<float> out) { decode_into(payload, Sink{out, 1.0f, true}); }

}  // namespace murmur::compress

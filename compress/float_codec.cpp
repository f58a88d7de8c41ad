// fp32 / fp16 / bf16: element-wise casts. Body: the n values, little-endian
// (f32, or u16 fp16/bf16 bits, rounded to nearest even). No parameters.
#include <cstring>
#include <string>

#include "compress/codec_math.h"
#include "compress/codecs.h"
#include "compress/parallel.h"

namespace murmur::compress {
namespace {

// Rounding a finite float can overflow (fp16 above 65504): checking the encoded word
// catches that and NaN/Inf input in one test.
template <class T>
MURMUR_SIMD_CLONES bool encode_range(const float* __restrict x, uint8_t* __restrict out, size_t n) {
  using W = typename T::Word;
  uint32_t bad = 0;
#pragma omp simd reduction(| : bad)
  for (size_t i = 0; i < n; ++i) {
    const W w = T::from(x[i]);
    bad |= uint32_t(!T::finite(w));
    std::memcpy(out + i * sizeof(W), &w, sizeof(W));
  }
  return bad == 0;
}

template <class T>
MURMUR_SIMD_CLONES bool check_range(const uint8_t* __restrict in, size_t n) {
  using W = typename T::Word;
  uint32_t bad = 0;
#pragma omp simd reduction(| : bad)
  for (size_t i = 0; i < n; ++i) {
    W w;
    std::memcpy(&w, in + i * sizeof(W), sizeof(W));
    bad |= uint32_t(!T::finite(w));
  }
  return bad == 0;
}

template <class T>
MURMUR_SIMD_CLONES bool apply_range(const uint8_t* __restrict in, size_t n, float alpha, float* __restrict out) {
  using W = typename T::Word;
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    W w;
    std::memcpy(&w, in + i * sizeof(W), sizeof(W));
    out[i] = math::accumulate(out[i], alpha, T::to(w), 1.0f);
  }
  return true;
}

template <class T>
void encode_as(std::span<const float> x, ByteWriter& w, const char* name) {
  constexpr size_t kW = sizeof(typename T::Word);
  uint8_t* out = w.extend(x.size() * kW);
  if (!parallel_chunks(x.size(), kParallelGrain, [&](size_t b, size_t e) {
        return encode_range<T>(x.data() + b, out + b * kW, e - b);
      })) {
    throw_nonfinite_input(name);
  }
}

template <class T>
void decode_as(CodecId id, ByteReader& r, const Sink& sink) {
  constexpr size_t kW = sizeof(typename T::Word);
  const size_t n = sink.out.size();
  const uint8_t* in = parse_float(id, r, n).data();
  if (!parallel_chunks(n, kParallelGrain, [&](size_t b, size_t e) { return check_range<T>(in + b * kW, e - b); })) {
    throw DecodeError(std::string(codec_name(id)) + " payload holds NaN or infinity");
  }
  sink.begin();
  parallel_chunks(n, kParallelGrain, [&](size_t b, size_t e) {
    return apply_range<T>(in + b * kW, e - b, sink.alpha, sink.out.data() + b);
  });
}

}  // namespace

void encode_float(CodecId id, std::span<const float> x, ByteWriter& w) {
  switch (id) {
    case CodecId::kFp32: return encode_as<math::Fp32Cast>(x, w, "fp32");
    case CodecId::kFp16: return encode_as<math::Fp16Cast>(x, w, "fp16");
    default: return encode_as<math::Bf16Cast>(x, w, "bf16");
  }
}

std::span<const uint8_t> parse_float(CodecId id, ByteReader& r, size_t n) {
  std::span<const uint8_t> values = r.bytes(uint64_t(n) * (id == CodecId::kFp32 ? 4 : 2), "values");
  r.expect_end(codec_name(id));
  return values;
}

void decode_float(CodecId id, ByteReader& r, const Sink& sink) {
  switch (id) {
    case CodecId::kFp32: return decode_as<math::Fp32Cast>(id, r, sink);
    case CodecId::kFp16: return decode_as<math::Fp16Cast>(id, r, sink);
    default: return decode_as<math::Bf16Cast>(id, r, sink);
  }
}

}  // namespace murmur::compress

// Public codec API: encode a flat float span into a self-describing payload,
// decode a payload into (or onto) a span. Wire formats: docs/compression.md.
//
// Gossip (CHOCO) uses an Encoder directly: q = C(x) and θ̂ += D(q) through
// decode_accumulate, exactly as its receivers do (decoding is deterministic and
// bit-identical across threads and devices). EF-SGD wraps an Encoder with a
// residual: see error_feedback.h.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "compress/codec_spec.h"
#include "compress/wire.h"

namespace murmur::compress {

// A (rows, cols) row-major matrix at x[offset, offset + rows*cols) of the flat span.
struct MatrixView {
  uint64_t offset = 0;
  uint32_t rows = 0;
  uint32_t cols = 0;
};

struct EncodeOptions {
  // Randomness of stochastic rounding, randk's index set, topk's threshold sample and
  // PowerSGD's initial Q. Use the round number (mixed with the peer id) so rounds differ.
  uint64_t seed = 0;
  // PowerSGD only (required): the matrices to factorise, sorted by offset and
  // non-overlapping; every element outside them goes through the spec's fallback codec.
  std::span<const MatrixView> layout;
};

// Threading: an Encoder is used by one thread at a time (PowerSGD keeps per-matrix
// warm-start state in it); its kernels use OpenMP internally. Decoding is stateless.
class Encoder {
 public:
  explicit Encoder(const CodecSpec& spec) : spec_(spec) {}
  explicit Encoder(std::string_view spec) : spec_(parse_codec_spec(spec)) {}
  const CodecSpec& spec() const { return spec_; }

  // Encodes x into `payload`, which is overwritten; reusing the vector across rounds
  // avoids reallocating and zero-filling it. Throws std::domain_error on NaN/Inf input
  // (or fp16 overflow) and std::invalid_argument on a bad layout.
  void encode(std::span<const float> x, const EncodeOptions& opt, std::vector<uint8_t>& payload);
  std::vector<uint8_t> encode(std::span<const float> x, const EncodeOptions& opt = {});
  // Forgets PowerSGD's warm start (e.g. after a resync).
  void reset() { warm_.clear(); }

 private:
  CodecSpec spec_;
  std::vector<std::vector<float>> warm_;  // PowerSGD: Q (cols, rank) per matrix
};

// out += alpha * D(payload). The payload must describe exactly out.size() elements.
// Throws DecodeError for any malformed, inconsistent or non-finite payload, and then
// leaves `out` unchanged; std::invalid_argument for a non-finite alpha.
void decode_accumulate(std::span<const uint8_t> payload, std::span<float> out, float alpha = 1.0f);
// out = D(payload); same checks (on error `out` is unchanged).
void decode(std::span<const uint8_t> payload, std::span<float> out);

}  // namespace murmur::compress

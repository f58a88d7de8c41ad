// EF-SGD error feedback (Karimireddy et al., 2019): the residual of what earlier payloads
// did not carry is added to the next input, so nothing is lost, only delayed:
//   e += x;  q = C(e);  e -= D(q)
// D(q) is computed by the same decoder the receivers run, so e is exactly what they miss.
// Threading: one thread at a time (owns the residual and the encoder's state).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "compress/codec.h"

namespace murmur::compress {

class ErrorFeedback {
 public:
  ErrorFeedback(const CodecSpec& spec, size_t n) : encoder_(spec), residual_(n, 0.0f) {}

  // Encodes x plus the carried residual into `payload`; x.size() must equal the size
  // given at construction (std::invalid_argument otherwise).
  void encode(std::span<const float> x, const EncodeOptions& opt, std::vector<uint8_t>& payload);
  std::span<const float> residual() const { return residual_; }
  // Drops the residual and the encoder's warm start (e.g. after a resync).
  void reset();

 private:
  Encoder encoder_;
  std::vector<float> residual_;
  std::vector<float> next_;  // residual + x, swapped in once encoding succeeded
};

}  // namespace murmur::compress

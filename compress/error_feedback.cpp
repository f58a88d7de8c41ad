#include "compress/error_feedback.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace murmur::compress {

void ErrorFeedback::encode(std::span<const float> x, const EncodeOptions& opt, std::vector<uint8_t>& payload) {
  if (x.size() != residual_.size()) {
    throw std::invalid_argument("ErrorFeedback: input has " + std::to_string(x.size()) + " elements, expected " +
                                std::to_string(residual_.size()));
  }
  // Work on a copy so that a rejected input (NaN, say) cannot poison later rounds.
  next_.resize(residual_.size());
  std::transform(residual_.begin(), residual_.end(), x.begin(), next_.begin(), std::plus<float>());
  encoder_.encode(next_, opt, payload);
  decode_accumulate(payload, next_, -1.0f);
  residual_.swap(next_);
}

void ErrorFeedback::reset() {
  std::fill(residual_.begin(), residual_.end(), 0.0f);
  encoder_.reset();
}

}  // namespace murmur::compress

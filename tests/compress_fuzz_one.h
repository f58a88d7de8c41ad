// One fuzz input for the payload decoder, shared by the libFuzzer target and the
// deterministic fuzz-style test: decoding must either succeed with finite values or
// throw DecodeError, and a rejected payload must leave the output untouched.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "compress/codec.h"

namespace murmur::compress::testing {

// Returns true if the payload was accepted. Aborts (a finding) on any other outcome.
inline bool decode_one(std::span<const uint8_t> payload, size_t n) {
  std::vector<float> out(n, 1.0f);
  try {
    decode_accumulate(payload, out, 0.5f);
  } catch (const DecodeError&) {
    for (float v : out) {
      if (v != 1.0f) std::abort();  // a rejected payload modified the output
    }
    return false;
  }
  for (float v : out) {
    if (!std::isfinite(v)) std::abort();  // accepted a payload that decodes to NaN/Inf
  }
  return true;
}

}  // namespace murmur::compress::testing

// One fuzz input for the wire decoder, shared by the libFuzzer target and the
// deterministic fuzz-style test: decoding must never throw, a rejection must say
// why, and an accepted message must survive encode -> decode unchanged.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <span>

#include "gossip/wire.h"

namespace murmur::gossip::wire::testing {

// Returns true if the frame was accepted (as a message or a training message). Aborts (a
// finding) on any other outcome.
inline bool decode_one(std::span<const uint8_t> frame) {
  const DecodeResult m = decode(frame);
  if (m) {
    const DecodeResult again = decode(encode(*m.value));
    if (!again || *again.value != *m.value) std::abort();
  } else if (m.error.empty()) {
    std::abort();
  }
  const Decoded<gossip::TrainMessage> d = decode_train(frame);
  if (d) {
    const Decoded<gossip::TrainMessage> again = decode_train(encode_train(*d.value));
    if (!again || *again.value != *d.value) std::abort();
  } else if (d.error.empty()) {
    std::abort();
  }
  return bool(m) || bool(d);
}

}  // namespace murmur::gossip::wire::testing

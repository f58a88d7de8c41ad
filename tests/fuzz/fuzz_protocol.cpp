// libFuzzer target for the wire decoder (build: clang, -DMURMUR_FUZZ=ON; run:
// build-fuzz/fuzz_protocol -max_total_time=60 -max_len=4096 NEW_DIR). The input is
// one frame, decoded both as a message and as a training message; tests/test_protocol.cpp runs
// the same check (tests/protocol_fuzz_one.h) over random and mutated frames.
#include <cstddef>
#include <cstdint>
#include <span>

#include "tests/protocol_fuzz_one.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  murmur::gossip::wire::testing::decode_one(std::span<const uint8_t>(data, size));
  return 0;
}

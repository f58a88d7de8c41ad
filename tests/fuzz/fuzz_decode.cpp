// libFuzzer target for the payload decoder (build: clang, -DMURMUR_FUZZ=ON; run:
// build-fuzz/fuzz_compress_decode -max_total_time=60 -max_len=4096 NEW_DIR tests/fuzz/corpus).
// The first two bytes choose the expected element count (little-endian), the rest is the
// payload; tests/fuzz/corpus holds one valid input per codec (40 elements) to start from.
#include <cstddef>
#include <cstdint>
#include <span>

#include "tests/compress_fuzz_one.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t n = size_t(data[0]) | (size_t(data[1]) << 8);
  murmur::compress::testing::decode_one(std::span<const uint8_t>(data + 2, size - 2), n);
  return 0;
}

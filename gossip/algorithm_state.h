// The training algorithm's state for checkpoints: the round, the outer momentum
// and the public copy θ̂_i (whose difference to θ_i is the untransmitted remainder
// of error compensation). The neighbours' copies θ̂_j are left out on purpose: after
// a restart every link starts again from a snapshot.
//
// Byte layout (little-endian; the lead stores it beside the model checkpoint):
//   0  u8[4] magic "MRMS"     4  u32 version (1)
//   8  u64   round            16 u64 n (elements per array)
//   24 u32   flags: bit 0 momentum present, bit 1 public copy present
//   28 u32   reserved, 0
//   32 f32[n] momentum (if present), then f32[n] public copy (if present); nothing after.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace murmur::gossip {

struct AlgorithmState {
  uint64_t round = 0;
  std::vector<float> momentum;     // empty when the run has no outer momentum
  std::vector<float> public_copy;  // empty when the run does not gossip
};

std::vector<uint8_t> encode_algorithm_state(const AlgorithmState& state);
// Validates everything (magic, version, flags, sizes, n == expected_n, finite
// values, no trailing bytes); throws std::runtime_error naming the problem.
AlgorithmState decode_algorithm_state(std::span<const uint8_t> bytes, size_t expected_n);

}  // namespace murmur::gossip

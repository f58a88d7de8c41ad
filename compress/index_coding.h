// Compact coding of a sorted index set: Rice-coded gaps. Gap g = idx[j] - idx[j-1] - 1
// (idx[-1] = -1) is written as q = g >> b one-bits, a zero bit, then the b low bits of g,
// LSB-first in a little-endian bit stream padded with zero bits to a byte. With
// b = floor(log2(n / k)) this costs at most k * (b + 3) bits whatever the positions, and
// within about 0.03 bit per index of the entropy of random positions.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "compress/wire.h"

namespace murmur::compress {

// The Rice parameter minimising the stream size for these indices (0..63).
int choose_rice_param(std::span<const uint64_t> idx);
// Appends the bit stream for idx (strictly increasing) to w.
void encode_indices(std::span<const uint64_t> idx, int b, ByteWriter& w);
// Decodes exactly k indices, each < n and strictly increasing, from all of `stream`;
// throws DecodeError on anything else (truncation, overrun of n, trailing bits).
void decode_indices(std::span<const uint8_t> stream, uint64_t k, int b, uint64_t n, std::vector<uint64_t>& idx);

}  // namespace murmur::compress

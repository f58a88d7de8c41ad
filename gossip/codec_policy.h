// Picks the codec of a gossip round from the measured uplink (docs/algorithm.md, "Codec policy"):
// from a ladder of codecs ordered fine to coarse, the finest whose payload, sent
// to every neighbour, fits in uplink × time budget. Pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "compress/codec_spec.h"

namespace murmur::gossip {

// Bytes of one payload of n elements (compress wire format, docs/compression.md):
// exact for fp32/fp16/bf16/int8/int4/int2/sign, an upper bound for topk (Rice-coded
// gaps, ≤ r + 3 bits per index) and the expected size for randk. PowerSGD depends
// on the layout: std::invalid_argument.
uint64_t payload_bytes(const compress::CodecSpec& spec, uint64_t n);

// "fp32;bf16;int8:block=64;int4;sign": specs separated by ';' (a spec itself uses
// ':' and ','). Throws std::invalid_argument for a bad spec, PowerSGD, an empty
// ladder, or one that is not ordered fine to coarse (payload size non-increasing).
std::vector<compress::CodecSpec> parse_codec_ladder(std::string_view text, uint64_t n);
inline constexpr std::string_view kDefaultCodecLadder =
    "fp32;bf16;int8:block=64;int4:block=64;sign:block=256";

struct CodecChoice {
  size_t index = 0;          // into the ladder
  uint64_t round_bytes = 0;  // payload bytes × degree
  bool fits = false;         // false: even the coarsest exceeds the budget (send less often)
};

// The finest rung with payload_bytes × degree ≤ uplink_bytes_per_s × budget_s; the
// coarsest (fits = false) when none does. With no neighbours (degree 0) the finest.
// Throws std::invalid_argument for an empty ladder or a negative/NaN rate or budget.
CodecChoice choose_codec(std::span<const compress::CodecSpec> ladder, uint64_t n, uint32_t degree,
                         double uplink_bytes_per_s, double budget_s);

}  // namespace murmur::gossip

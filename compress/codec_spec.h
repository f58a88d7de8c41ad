// Codec selection by a spec string, e.g. "int4:block=64,stochastic" or "topk:fraction=0.01,approx".
// Grammar: NAME[:OPTION[,OPTION...]] where OPTION is key=value or a flag.
//   fp32 | fp16 | bf16
//   int8 | int4 | int2          block=N (multiple of 8, 8..65536; default 64), stochastic
//   sign                        block=N (default 256)
//   topk                        fraction=F (0 < F <= 1; default 0.01), approx
//   randk                       fraction=F (default 0.01), unscaled (send x_i instead of x_i / p: biased
//                               but contractive, for error feedback and CHOCO)
//   powersgd                    rank=R (1..256; default 4), fallback=fp32|fp16|bf16|int8 (default fp16)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "compress/wire.h"

namespace murmur::compress {

struct CodecSpec {
  CodecId codec = CodecId::kFp32;
  uint32_t block = 0;                 // int8/int4/int2/sign: elements per scale
  bool stochastic = false;            // int8/int4/int2: seeded unbiased rounding
  double fraction = 0;                // topk/randk: share of elements sent
  bool approx = false;                // topk: sampled threshold instead of the exact k-th value
  bool unscaled = false;              // randk: decode x_i rather than the unbiased x_i / p
  uint32_t rank = 0;                  // powersgd
  CodecId fallback = CodecId::kFp16;  // powersgd: codec for elements outside every matrix
};

// Throws std::invalid_argument naming the offending part and what is allowed.
CodecSpec parse_codec_spec(std::string_view text);
// Canonical spec string (all parameters explicit); parse_codec_spec(to_string(s)) == s.
std::string to_string(const CodecSpec& spec);
// The spec used for the elements outside PowerSGD's matrices.
CodecSpec fallback_spec(const CodecSpec& spec);

// Bits per element of the block-quantised codecs (int8/int4/int2/sign), 0 otherwise.
int quant_bits(CodecId id);

}  // namespace murmur::compress

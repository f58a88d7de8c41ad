#include "gossip/codec_policy.h"

#include <bit>
#include <cmath>
#include <stdexcept>
#include <string>

#include "compress/wire.h"

namespace murmur::gossip {

namespace {
uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
}  // namespace

uint64_t payload_bytes(const compress::CodecSpec& spec, uint64_t n) {
  using compress::CodecId;
  const uint64_t h = compress::kHeaderBytes;
  switch (spec.codec) {
    case CodecId::kFp32:
      return h + 4 * n;
    case CodecId::kFp16:
    case CodecId::kBf16:
      return h + 2 * n;
    case CodecId::kInt8:
    case CodecId::kInt4:
    case CodecId::kInt2:
    case CodecId::kSign: {
      const auto bits = static_cast<uint64_t>(compress::quant_bits(spec.codec));
      return h + 8 + 4 * ceil_div(n, spec.block) + ceil_div(n * bits, 8);
    }
    case CodecId::kTopk: {
      const uint64_t k =
          n == 0 ? 0 : std::max<uint64_t>(1, std::llround(spec.fraction * static_cast<double>(n)));
      // The encoder's Rice parameter is about log2(n/k); each gap costs at most r + 3 bits.
      const uint64_t r = k == 0 ? 0 : static_cast<uint64_t>(std::bit_width(n / k));
      return h + 16 + 4 * k + ceil_div(k * (r + 3), 8);
    }
    case CodecId::kRandk:
      return h + 24 + 4 * static_cast<uint64_t>(std::ceil(spec.fraction * static_cast<double>(n)));
    case CodecId::kPowerSgd:
      break;
  }
  throw std::invalid_argument(std::string("payload size of ") + compress::codec_name(spec.codec) +
                              " depends on the layout; not usable in a codec ladder");
}

std::vector<compress::CodecSpec> parse_codec_ladder(std::string_view text, uint64_t n) {
  std::vector<compress::CodecSpec> ladder;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(';', start), text.size());
    const compress::CodecSpec s = compress::parse_codec_spec(text.substr(start, end - start));
    const uint64_t bytes = payload_bytes(s, n);  // rejects PowerSGD
    if (!ladder.empty() && bytes > payload_bytes(ladder.back(), n))
      throw std::invalid_argument("codec ladder must go from fine to coarse: '" + to_string(s) +
                                  "' is larger than '" + to_string(ladder.back()) + "'");
    ladder.push_back(s);
    start = end + 1;
  }
  return ladder;
}

CodecChoice choose_codec(std::span<const compress::CodecSpec> ladder, uint64_t n, uint32_t degree,
                         double uplink_bytes_per_s, double budget_s) {
  if (ladder.empty()) throw std::invalid_argument("choose_codec: empty ladder");
  if (!(uplink_bytes_per_s >= 0) || !(budget_s >= 0))
    throw std::invalid_argument("choose_codec: uplink rate and budget must be >= 0");
  const double allowance = uplink_bytes_per_s * budget_s;
  for (size_t i = 0; i < ladder.size(); ++i) {
    const uint64_t bytes = payload_bytes(ladder[i], n) * degree;
    if (static_cast<double>(bytes) <= allowance) return {i, bytes, true};
  }
  const size_t last = ladder.size() - 1;
  return {last, payload_bytes(ladder[last], n) * degree, false};
}

}  // namespace murmur::gossip

#include "compress/codec_spec.h"

#include <charconv>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace murmur::compress {
namespace {

constexpr uint32_t kDefaultQuantBlock = 64;
constexpr uint32_t kDefaultSignBlock = 256;
constexpr double kDefaultFraction = 0.01;
constexpr uint32_t kDefaultRank = 4;
constexpr uint32_t kMaxBlock = 65536;
constexpr uint32_t kMaxRank = 256;

[[noreturn]] void fail(std::string_view spec, const std::string& why) {
  throw std::invalid_argument("codec spec '" + std::string(spec) + "': " + why);
}

CodecId codec_from_name(std::string_view spec, std::string_view name) {
  for (int id = int(CodecId::kFp32); id <= int(CodecId::kPowerSgd); ++id) {
    if (name == codec_name(CodecId(id))) return CodecId(id);
  }
  fail(spec, "unknown codec '" + std::string(name) +
                 "' (known: fp32, fp16, bf16, int8, int4, int2, sign, topk, randk, powersgd)");
}

uint32_t parse_uint(std::string_view spec, std::string_view key, std::string_view v, uint32_t lo,
                    uint32_t hi) {
  uint32_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size() || out < lo || out > hi) {
    fail(spec, std::string(key) + "=" + std::string(v) + " is not an integer in [" + std::to_string(lo) +
                   ", " + std::to_string(hi) + "]");
  }
  return out;
}

double parse_fraction(std::string_view spec, std::string_view v) {
  std::string s(v);
  size_t used = 0;
  double f = 0;
  try {
    f = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size() || !(f > 0 && f <= 1)) {
    fail(spec, "fraction=" + s + " must be a number in (0, 1]");
  }
  return f;
}

std::string format_fraction(double f) {
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, f);  // shortest round-trip form
  return std::string(buf, p);
}

}  // namespace

int quant_bits(CodecId id) {
  switch (id) {
    case CodecId::kInt8: return 8;
    case CodecId::kInt4: return 4;
    case CodecId::kInt2: return 2;
    case CodecId::kSign: return 1;
    default: return 0;
  }
}

CodecSpec parse_codec_spec(std::string_view text) {
  size_t colon = text.find(':');
  std::string_view name = text.substr(0, colon);
  CodecSpec s;
  s.codec = codec_from_name(text, name);
  const bool quant = quant_bits(s.codec) > 0;
  const bool sparse = s.codec == CodecId::kTopk || s.codec == CodecId::kRandk;
  if (quant) s.block = s.codec == CodecId::kSign ? kDefaultSignBlock : kDefaultQuantBlock;
  if (sparse) s.fraction = kDefaultFraction;
  if (s.codec == CodecId::kPowerSgd) s.rank = kDefaultRank;

  std::string_view rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  if (colon != std::string_view::npos && rest.empty()) fail(text, "empty option list after ':'");
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view opt = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (comma != std::string_view::npos && rest.empty()) fail(text, "trailing ','");
    size_t eq = opt.find('=');
    std::string_view key = opt.substr(0, eq);
    std::string_view val = eq == std::string_view::npos ? std::string_view() : opt.substr(eq + 1);
    const bool flag = eq == std::string_view::npos;
    if (quant && key == "block" && !flag) {
      s.block = parse_uint(text, key, val, 8, kMaxBlock);
      if (s.block % 8 != 0) fail(text, "block=" + std::string(val) + " must be a multiple of 8");
    } else if (quant && s.codec != CodecId::kSign && key == "stochastic" && flag) {
      s.stochastic = true;
    } else if (sparse && key == "fraction" && !flag) {
      s.fraction = parse_fraction(text, val);
    } else if (s.codec == CodecId::kTopk && key == "approx" && flag) {
      s.approx = true;
    } else if (s.codec == CodecId::kRandk && key == "unscaled" && flag) {
      s.unscaled = true;
    } else if (s.codec == CodecId::kPowerSgd && key == "rank" && !flag) {
      s.rank = parse_uint(text, key, val, 1, kMaxRank);
    } else if (s.codec == CodecId::kPowerSgd && key == "fallback" && !flag) {
      CodecId f = codec_from_name(text, val);
      if (f != CodecId::kFp32 && f != CodecId::kFp16 && f != CodecId::kBf16 && f != CodecId::kInt8) {
        fail(text, "fallback must be fp32, fp16, bf16 or int8");
      }
      s.fallback = f;
    } else {
      const char* allowed = quant ? (s.codec == CodecId::kSign ? "block=N" : "block=N, stochastic")
                            : s.codec == CodecId::kTopk     ? "fraction=F, approx"
                            : s.codec == CodecId::kRandk    ? "fraction=F, unscaled"
                            : s.codec == CodecId::kPowerSgd ? "rank=R, fallback=CODEC"
                                                            : "none";
      fail(text, "unknown option '" + std::string(opt) + "' for " + std::string(name) + " (options: " +
                     allowed + ")");
    }
  }
  return s;
}

std::string to_string(const CodecSpec& s) {
  std::string out = codec_name(s.codec);
  switch (s.codec) {
    case CodecId::kInt8:
    case CodecId::kInt4:
    case CodecId::kInt2:
    case CodecId::kSign:
      out += ":block=" + std::to_string(s.block);
      if (s.stochastic) out += ",stochastic";
      break;
    case CodecId::kTopk:
    case CodecId::kRandk:
      out += ":fraction=" + format_fraction(s.fraction);
      if (s.approx) out += ",approx";
      if (s.unscaled) out += ",unscaled";
      break;
    case CodecId::kPowerSgd:
      out += ":rank=" + std::to_string(s.rank) + ",fallback=" + codec_name(s.fallback);
      break;
    default:
      break;
  }
  return out;
}

CodecSpec fallback_spec(const CodecSpec& spec) {
  CodecSpec f;
  f.codec = spec.fallback;
  if (quant_bits(f.codec) > 0) f.block = kDefaultQuantBlock;
  return f;
}

}  // namespace murmur::compress

#include "compress/wire.h"

#include <string>

namespace murmur::compress {
namespace {
constexpr uint8_t kMagic[4] = {'M', 'R', 'M', 'C'};
}

const char* codec_name(CodecId id) {
  switch (id) {
    case CodecId::kFp32: return "fp32";
    case CodecId::kFp16: return "fp16";
    case CodecId::kBf16: return "bf16";
    case CodecId::kInt8: return "int8";
    case CodecId::kInt4: return "int4";
    case CodecId::kInt2: return "int2";
    case CodecId::kSign: return "sign";
    case CodecId::kTopk: return "topk";
    case CodecId::kRandk: return "randk";
    case CodecId::kPowerSgd: return "powersgd";
  }
  return "unknown";
}

const uint8_t* ByteReader::take(uint64_t n, const char* what) {
  if (n > remaining()) {
    throw DecodeError("payload truncated: " + std::string(what) + " needs " + std::to_string(n) +
                      " bytes, " + std::to_string(remaining()) + " left");
  }
  const uint8_t* p = data_.data() + pos_;
  pos_ += size_t(n);
  return p;
}

void ByteReader::expect_end(const char* codec) const {
  if (remaining() != 0) {
    throw DecodeError(std::string(codec) + " payload has " + std::to_string(remaining()) +
                      " trailing bytes");
  }
}

void write_header(ByteWriter& w, CodecId codec, uint64_t count) {
  for (uint8_t m : kMagic) w.u8(m);
  w.u8(kWireVersion);
  w.u8(static_cast<uint8_t>(codec));
  w.u16(0);
  w.u64(count);
}

Header read_header(ByteReader& r, uint64_t expected_count) {
  for (uint8_t m : kMagic) {
    if (r.u8("magic") != m) throw DecodeError("not a Murmur payload (bad magic)");
  }
  uint8_t version = r.u8("version");
  if (version != kWireVersion) {
    throw DecodeError("unsupported payload version " + std::to_string(version) + " (this build reads " +
                      std::to_string(kWireVersion) + ")");
  }
  uint8_t id = r.u8("codec id");
  if (id < uint8_t(CodecId::kFp32) || id > uint8_t(CodecId::kPowerSgd)) {
    throw DecodeError("unknown codec id " + std::to_string(id));
  }
  if (r.u16("reserved") != 0) throw DecodeError("reserved header field is not zero");
  uint64_t count = r.u64("element count");
  if (count != expected_count) {
    throw DecodeError(std::string(codec_name(CodecId(id))) + " payload carries " + std::to_string(count) +
                      " elements, expected " + std::to_string(expected_count));
  }
  return {CodecId(id), count};
}

}  // namespace murmur::compress

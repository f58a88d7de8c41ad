// Payload framing shared by every codec: the 16-byte versioned header and
// bounds-checked little-endian readers/writers. Decoding treats its input as
// hostile: every malformed byte string ends in a DecodeError naming the problem.
//
// Header (little-endian, 16 bytes):
//   0  u8[4] magic "MRMC"
//   4  u8    wire version (1)
//   5  u8    codec id (CodecId)
//   6  u16   reserved, must be 0
//   8  u64   element count of the decoded span
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace murmur::compress {

static_assert(std::endian::native == std::endian::little,
              "the wire format is little-endian and is copied as-is: port ByteWriter/ByteReader first");

// A payload that cannot be decoded: malformed, truncated, inconsistent with the
// caller's expected size, or carrying non-finite values.
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class CodecId : uint8_t {
  kFp32 = 1,
  kFp16 = 2,
  kBf16 = 3,
  kInt8 = 4,
  kInt4 = 5,
  kInt2 = 6,
  kSign = 7,
  kTopk = 8,
  kRandk = 9,
  kPowerSgd = 10,
};
const char* codec_name(CodecId id);

inline constexpr uint8_t kWireVersion = 1;
inline constexpr size_t kHeaderBytes = 16;

struct Header {
  CodecId codec;
  uint64_t count;
};

// Writes little-endian fields into a byte vector from its start. The vector only
// grows when needed, so a buffer reused across rounds is not zero-filled again;
// finish() trims it to what was written.
class ByteWriter {
 public:
  explicit ByteWriter(std::vector<uint8_t>& buf) : buf_(buf) {}
  void u8(uint8_t v) { put(&v, sizeof v); }
  void u16(uint16_t v) { put(&v, sizeof v); }
  void u32(uint32_t v) { put(&v, sizeof v); }
  void u64(uint64_t v) { put(&v, sizeof v); }
  void f32(float v) { put(&v, sizeof v); }
  void f32s(std::span<const float> v) {
    if (!v.empty()) put(v.data(), v.size_bytes());  // an empty span's data() may be null
  }
  // Reserves the next n bytes (contents unspecified) and returns where they start;
  // valid until the next write.
  uint8_t* extend(size_t n) {
    if (buf_.size() < pos_ + n) buf_.resize(pos_ + n);
    uint8_t* p = buf_.data() + pos_;
    pos_ += n;
    return p;
  }
  void finish() { buf_.resize(pos_); }

 private:
  void put(const void* p, size_t n) { std::memcpy(extend(n), p, n); }
  std::vector<uint8_t>& buf_;
  size_t pos_ = 0;
};

// Bounds-checked reads; running past the end is a DecodeError naming the field.
class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> data) : data_(data) {}
  uint8_t u8(const char* what) { return *take(1, what); }
  uint16_t u16(const char* what) { return get<uint16_t>(what); }
  uint32_t u32(const char* what) { return get<uint32_t>(what); }
  uint64_t u64(const char* what) { return get<uint64_t>(what); }
  float f32(const char* what) { return get<float>(what); }
  std::span<const uint8_t> bytes(uint64_t n, const char* what) { return {take(n, what), size_t(n)}; }
  size_t remaining() const { return data_.size() - pos_; }
  // The payload must end exactly here (no trailing garbage).
  void expect_end(const char* codec) const;

 private:
  const uint8_t* take(uint64_t n, const char* what);
  template <class T>
  T get(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof v, what), sizeof v);
    return v;
  }
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

void write_header(ByteWriter& w, CodecId codec, uint64_t count);
// Reads and validates the header; `expected_count` bounds every later allocation.
Header read_header(ByteReader& r, uint64_t expected_count);

// Unaligned little-endian float loads/stores for payload sections.
inline float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store_f32(uint8_t* p, float v) { std::memcpy(p, &v, sizeof v); }

}  // namespace murmur::compress

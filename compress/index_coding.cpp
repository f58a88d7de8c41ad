#include "compress/index_coding.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace murmur::compress {
namespace {

class BitWriter {
 public:
  explicit BitWriter(ByteWriter& w) : w_(w) {}
  // Appends the low `bits` (<= 32) bits of v.
  void put(uint64_t v, int bits) {
    acc_ |= (v & ((uint64_t(1) << bits) - 1)) << used_;
    used_ += bits;
    if (used_ >= 32) {
      w_.u32(uint32_t(acc_));
      acc_ >>= 32;
      used_ -= 32;
    }
  }
  void put_wide(uint64_t v, int bits) {  // bits <= 64
    if (bits > 32) {
      put(v, 32);
      put(v >> 32, bits - 32);
    } else {
      put(v, bits);
    }
  }
  void flush() {
    for (; used_ > 0; used_ -= std::min(used_, 8), acc_ >>= 8) w_.u8(uint8_t(acc_));
  }

 private:
  ByteWriter& w_;
  uint64_t acc_ = 0;
  int used_ = 0;
};

class BitReader {
 public:
  explicit BitReader(std::span<const uint8_t> s) : s_(s), total_(uint64_t(s.size()) * 8) {}
  // The next up-to-57 bits (zeros past the end), without consuming them.
  uint64_t peek() const {
    const size_t byte = size_t(pos_ / 8);
    uint64_t v = 0;
    if (byte < s_.size()) std::memcpy(&v, s_.data() + byte, std::min<size_t>(8, s_.size() - byte));
    return v >> (pos_ % 8);
  }
  uint64_t left() const { return total_ - pos_; }
  void skip(uint64_t bits) {
    if (bits > left()) throw DecodeError("topk index stream truncated");
    pos_ += bits;
  }
  uint64_t take(int bits) {  // bits <= 64
    uint64_t v = 0;
    for (int got = 0; got < bits;) {
      const int step = std::min(bits - got, 56);
      const uint64_t part = peek() & ((uint64_t(1) << step) - 1);
      skip(uint64_t(step));
      v |= part << got;
      got += step;
    }
    return v;
  }

 private:
  std::span<const uint8_t> s_;
  uint64_t total_;
  uint64_t pos_ = 0;
};

uint64_t stream_bits(std::span<const uint64_t> idx, int b) {
  uint64_t bits = uint64_t(idx.size()) * uint64_t(b + 1), prev = ~uint64_t(0);
  for (uint64_t i : idx) {
    bits += (i - prev - 1) >> b;
    prev = i;
  }
  return bits;
}

}  // namespace

int choose_rice_param(std::span<const uint64_t> idx) {
  if (idx.empty()) return 0;
  const uint64_t mean_gap = (idx.back() + 1) / idx.size();
  const int guess = mean_gap == 0 ? 0 : std::bit_width(mean_gap) - 1;
  int best = guess;
  uint64_t best_bits = stream_bits(idx, guess);
  for (int b : {guess - 1, guess + 1}) {
    if (b < 0 || b > 63) continue;
    const uint64_t bits = stream_bits(idx, b);
    if (bits < best_bits) best = b, best_bits = bits;
  }
  return best;
}

void encode_indices(std::span<const uint64_t> idx, int b, ByteWriter& w) {
  BitWriter bw(w);
  uint64_t prev = ~uint64_t(0);
  for (uint64_t i : idx) {
    const uint64_t gap = i - prev - 1;
    prev = i;
    uint64_t q = gap >> b;
    for (; q >= 31; q -= 31) bw.put(0x7fffffffU, 31);
    bw.put((uint64_t(1) << q) - 1, int(q) + 1);  // q ones, then the terminating zero
    bw.put_wide(gap, b);
  }
  bw.flush();
}

void decode_indices(std::span<const uint8_t> stream, uint64_t k, int b, uint64_t n, std::vector<uint64_t>& idx) {
  if (b < 0 || b > 63) throw DecodeError("topk Rice parameter " + std::to_string(b) + " out of range");
  // Every index costs at least b + 1 bits: bound k before allocating.
  if (k > uint64_t(stream.size()) * 8 / uint64_t(b + 1)) throw DecodeError("topk index stream too short for k");
  idx.clear();
  idx.reserve(size_t(k));
  BitReader br(stream);
  uint64_t next = 0;  // smallest index allowed next
  const uint64_t max_q = n >> b;
  for (uint64_t j = 0; j < k; ++j) {
    uint64_t q = 0;
    for (;;) {
      const int ones = std::countr_one(br.peek() & ((uint64_t(1) << 56) - 1));
      if (ones < 56) {
        q += uint64_t(ones);
        br.skip(uint64_t(ones) + 1);
        break;
      }
      q += 56;
      br.skip(56);
      if (q > max_q) break;
    }
    if (q > max_q) throw DecodeError("topk index beyond the element count");
    const uint64_t gap = (q << b) | br.take(b);
    if (gap >= n - next) throw DecodeError("topk index beyond the element count");
    idx.push_back(next + gap);
    next += gap + 1;
  }
  const uint64_t rest = br.left();
  if (rest >= 8 || br.take(int(rest)) != 0) throw DecodeError("topk index stream has trailing bits");
}

}  // namespace murmur::compress

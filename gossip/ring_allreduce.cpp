#include "gossip/ring_allreduce.h"

#include <stdexcept>

namespace murmur::gossip {

namespace {
int mod(int a, int p) { return ((a % p) + p) % p; }
}  // namespace

RingAllReduce::RingAllReduce(int rank, int size, std::span<float> buf, std::string_view codec)
    : rank_(rank), size_(size), buf_(buf), encoder_(codec) {
  if (size < 1 || rank < 0 || rank >= size)
    throw std::invalid_argument("ring all-reduce: rank " + std::to_string(rank) + " outside a ring of " +
                                std::to_string(size));
}

// Segment i covers [i*n/P, (i+1)*n/P): sizes differ by at most one element.
std::span<float> RingAllReduce::segment(int index) const {
  const size_t n = buf_.size(), p = static_cast<size_t>(size_), i = static_cast<size_t>(index);
  const size_t begin = i * n / p, end = (i + 1) * n / p;
  return buf_.subspan(begin, end - begin);
}

// Reduce-scatter step s sends segment (rank - s); all-gather step t = s - (P-1)
// sends segment (rank + 1 - t). Either way it is the segment received last.
RingAllReduce::Send RingAllReduce::send_step(uint32_t step) {
  const int s = static_cast<int>(step), p = size_;
  const int index = s < p - 1 ? mod(rank_ - s, p) : mod(rank_ + 1 - (s - (p - 1)), p);
  Send out{mod(rank_ + 1, p), step, {}};
  encoder_.encode(segment(index), {}, out.payload);
  return out;
}

std::vector<RingAllReduce::Send> RingAllReduce::start() {
  if (size_ == 1) return {};
  return {send_step(0)};
}

std::vector<RingAllReduce::Send> RingAllReduce::on_segment(uint32_t step, std::span<const uint8_t> payload) {
  if (done() || step != next_recv_)
    throw std::runtime_error("ring all-reduce: segment for step " + std::to_string(step) + ", expected " +
                             (done() ? std::string("none (done)") : std::to_string(next_recv_)));
  const int s = static_cast<int>(step), p = size_;
  if (s < p - 1) {
    compress::decode_accumulate(payload, segment(mod(rank_ - s - 1, p)));
  } else {
    compress::decode(payload, segment(mod(rank_ - (s - (p - 1)), p)));
  }
  ++next_recv_;
  if (done()) return {};
  return {send_step(step + 1)};
}

}  // namespace murmur::gossip

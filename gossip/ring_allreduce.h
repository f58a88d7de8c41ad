// Ring all-reduce (reduce-scatter then all-gather; Patarasuk & Yuan 2009) as a
// sans-IO state machine: the baselines `allreduce` (gradients every step) and
// `diloco` (pseudo-gradients every H steps) run it over the same transport as
// the gossip algorithm. Each of the P members sends 2(P-1)/P of the buffer.
//
// Segments travel as compress/ payloads (fp32 by default: exact), so the
// receiving side reuses the hostile decoder: a wrong size or a NaN is an error.
// Messages from the left neighbour must be fed in the order they were sent
// (the transport keeps per-link order). Threading: one thread at a time.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "compress/codec.h"

namespace murmur::gossip {

class RingAllReduce {
 public:
  struct Send {
    int to_rank = 0;  // always the right neighbour, (rank + 1) % size
    uint32_t step = 0;
    std::vector<uint8_t> payload;
  };

  // Sums `buf` over the `size` members in place (the caller divides for a mean).
  // `buf` must stay valid and untouched by others until done().
  RingAllReduce(int rank, int size, std::span<float> buf, std::string_view codec = "fp32");

  std::vector<Send> start();
  // The left neighbour's segment for `step`. Throws std::runtime_error for an
  // unexpected step, and compress::DecodeError for a malformed payload (the
  // buffer is then unchanged and the operation cannot complete).
  std::vector<Send> on_segment(uint32_t step, std::span<const uint8_t> payload);
  bool done() const { return next_recv_ == total_steps(); }
  uint32_t total_steps() const { return size_ > 1 ? 2 * static_cast<uint32_t>(size_ - 1) : 0; }

 private:
  std::span<float> segment(int index) const;
  Send send_step(uint32_t step);

  int rank_, size_;
  std::span<float> buf_;
  compress::Encoder encoder_;
  uint32_t next_recv_ = 0;
};

}  // namespace murmur::gossip

// Deterministic training batches for one peer. The split is cut into windows of
// T+1 tokens at stride T; each epoch visits all windows in an order shuffled by
// (seed, peer, epoch), so every peer streams its own reproducible sequence and a
// (epoch, index) position is all that a checkpoint needs to resume it exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "model/token_shard.h"

namespace murmur {

struct LoaderPosition {
  uint64_t epoch = 0;
  uint64_t index = 0;  // windows consumed in this epoch
};

class DataLoader {
 public:
  // Throws std::invalid_argument if the split holds fewer than B windows of T+1 tokens.
  DataLoader(const TokenDataset& data, int batch, int context, uint64_t seed, uint32_t peer);

  // inputs and targets are (B, T) row-major; targets are inputs shifted by one token.
  void next_batch(int32_t* inputs, int32_t* targets);
  LoaderPosition position() const { return pos_; }
  void seek(LoaderPosition pos);  // throws if pos.index is past the epoch
  uint64_t windows_per_epoch() const { return n_windows_; }

 private:
  void shuffle_epoch();

  const TokenDataset& data_;
  int B_, T_;
  uint64_t seed_;
  uint32_t peer_;
  uint64_t n_windows_;
  LoaderPosition pos_;
  std::vector<uint32_t> order_;  // window permutation of the current epoch
  std::vector<int32_t> window_;  // scratch (T+1)
};

}  // namespace murmur

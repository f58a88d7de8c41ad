#include "model/data_loader.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "model/rng.h"

namespace murmur {

DataLoader::DataLoader(const TokenDataset& data, int batch, int context, uint64_t seed, uint32_t peer)
    : data_(data), B_(batch), T_(context), seed_(seed), peer_(peer), n_windows_(0) {
  if (batch < 1 || context < 1) {
    throw std::invalid_argument("data loader: batch (" + std::to_string(batch) + ") and context (" +
                                std::to_string(context) + ") must be positive");
  }
  n_windows_ = data.size() > 0 ? (data.size() - 1) / static_cast<uint64_t>(T_) : 0;
  if (n_windows_ < static_cast<uint64_t>(B_)) {
    throw std::invalid_argument("data loader: the split holds " + std::to_string(data.size()) + " tokens = " +
                                std::to_string(n_windows_) + " windows of " + std::to_string(T_ + 1) +
                                " tokens, fewer than the batch of " + std::to_string(B_));
  }
  if (n_windows_ > std::numeric_limits<uint32_t>::max()) {
    throw std::invalid_argument("data loader: " + std::to_string(n_windows_) +
                                " windows per epoch exceed 2^32; use a longer context");
  }
  window_.resize(static_cast<size_t>(T_) + 1);
  shuffle_epoch();
}

void DataLoader::shuffle_epoch() {
  order_.resize(n_windows_);
  for (uint32_t i = 0; i < n_windows_; ++i) order_[i] = i;
  SplitMix64 rng(mix64(mix64(mix64(seed_) ^ peer_) ^ pos_.epoch));
  for (uint64_t i = n_windows_ - 1; i > 0; --i)
    std::swap(order_[i], order_[rng.below(i + 1)]);  // Fisher-Yates
}

void DataLoader::next_batch(int32_t* inputs, int32_t* targets) {
  const auto T = static_cast<size_t>(T_);
  for (size_t b = 0; b < static_cast<size_t>(B_); ++b) {
    if (pos_.index == n_windows_) {  // an epoch may end mid-batch: carry on into the next
      ++pos_.epoch;
      pos_.index = 0;
      shuffle_epoch();
    }
    data_.copy(order_[pos_.index++] * T, T + 1, window_.data());
    std::copy_n(window_.begin(), T, inputs + b * T);
    std::copy_n(window_.begin() + 1, T, targets + b * T);
  }
}

void DataLoader::seek(LoaderPosition pos) {
  if (pos.index > n_windows_) {
    throw std::out_of_range("data loader: position " + std::to_string(pos.index) + " is past the epoch of " +
                            std::to_string(n_windows_) + " windows");
  }
  const bool reshuffle = pos.epoch != pos_.epoch;
  pos_ = pos;
  if (reshuffle) shuffle_epoch();
}

}  // namespace murmur

// Large payload buffers on the network thread: their page faults and their
// unmapping, not the copies, are what stalls it (measured in docs/benchmarks.md).
#pragma once

#include <sys/mman.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

namespace murmur::net {

// Asks for transparent huge pages (where THP is in "madvise" mode) on the 2 MiB-aligned interior of
// [data, data + bytes): filling a 16 MiB buffer then takes 8 page faults instead of 4,096.
inline void advise_huge_pages(void* data, size_t bytes) {
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const auto at = reinterpret_cast<uintptr_t>(data);
  const uintptr_t begin = (at + kHuge - 1) & ~(kHuge - 1), end = (at + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // advice only
}

// Frees large buffers on a thread of its own. Unmapping a 256 MiB payload takes
// ~20 ms (page-table teardown), which the thread that answers probes must not
// spend: the transport hands it the payloads it has finished sending.
class BufferReaper {
 public:
  // Smaller buffers come from malloc's heap, not mmap: freeing them in place is cheaper than a hand-off.
  static constexpr size_t kInlineBytes = 1u << 20;

  BufferReaper() : thread_([this](std::stop_token stop) { run(stop); }) {}
  BufferReaper(const BufferReaper&) = delete;
  BufferReaper& operator=(const BufferReaper&) = delete;

  void release(std::vector<uint8_t>&& buffer) {
    if (buffer.capacity() < kInlineBytes) {
      std::vector<uint8_t>().swap(buffer);
      return;
    }
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(buffer));
    }
    cv_.notify_one();
  }

 private:
  void run(std::stop_token stop) {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, stop, [&] { return !queue_.empty(); });
      if (queue_.empty()) return;  // stop requested with nothing left
      std::vector<std::vector<uint8_t>> batch;
      batch.swap(queue_);
      lock.unlock();
      batch.clear();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable_any cv_;
  std::vector<std::vector<uint8_t>> queue_;
  // Last: it starts once the members above exist, and is stopped and joined (after freeing what is
  // still queued) before they go.
  std::jthread thread_;
};

}  // namespace murmur::net

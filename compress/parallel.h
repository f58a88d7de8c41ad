// Chunked OpenMP loops for the CPU kernels. Chunks are fixed by the problem size,
// not the thread count, so every result is identical for any number of threads.
// Bodies must not throw (report errors through their return value instead).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

// Hot kernels are compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time. Not under
// ThreadSanitizer: the clones' ifunc resolvers run during relocation, before its runtime is up, and crash.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(MURMUR_NO_CLONES) && \
    !defined(__SANITIZE_THREAD__)
#define MURMUR_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MURMUR_SIMD_CLONES
#endif

// Helpers of the cloned kernels: inlined so they are compiled for the clone's ISA.
#define MURMUR_INLINE inline __attribute__((always_inline))

namespace murmur::compress {

// Elements per parallel chunk: large enough to amortise scheduling, small enough to balance.
inline constexpr size_t kParallelGrain = size_t(1) << 16;

// Calls fn(begin, end) for consecutive chunks of `grain` items covering [0, n); fn returns
// false on a bad input. Returns true if every call did. Chunks are handed out dynamically: a
// sleeping OpenMP thread takes tens of microseconds to wake, and with a static split the
// other threads would wait for it (1M-element int8 stochastic encode: 0.176 -> 0.150 ms).
template <class Fn>
bool parallel_chunks(size_t n, size_t grain, Fn&& fn) {
  const size_t chunks = grain == 0 ? 0 : (n + grain - 1) / grain;
  if (chunks <= 1) return n == 0 || fn(size_t(0), n);
  bool ok = true;
#pragma omp parallel for schedule(dynamic) reduction(&& : ok)
  for (int64_t c = 0; c < int64_t(chunks); ++c) {
    ok = fn(size_t(c) * grain, std::min(n, size_t(c + 1) * grain)) && ok;
  }
  return ok;
}

// Calls fn(k) for every k in [0, n): across threads only from kParallelGrain items on. Below that
// not even a parallel region with a false `if` clause is entered: libgomp still sets up a team for
// it, and a swarm simulation of small models spent an eighth of its time there.
template <class Fn>
MURMUR_INLINE void parallel_for(size_t n, Fn&& fn) {
  if (n < kParallelGrain) {
#pragma omp simd
    for (size_t k = 0; k < n; ++k) fn(k);
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (size_t k = 0; k < n; ++k) fn(k);
}

}  // namespace murmur::compress

// Sparsifiers. topk sends the largest-magnitude values with Rice-coded positions;
// randk sends the values at positions drawn from a seed carried in the payload.
//
// topk body:  u64 k, u8 rice_b, u8 flags (bit 0: approx), u16 0, u32 0,
//             f32 values[k] (in index order), u8 index_stream[] (index_coding.h; the rest).
// randk body: u64 seed, u32 threshold, u8 flags (bit 0: unscaled), u8 0, u16 0, u64 count,
//             f32 values[count] (in index order).
// randk keeps element i iff element_bits(stream_key(seed, 2), i) < threshold, i.e. with
// probability p = threshold / 2^32, and decodes value * (2^32 / threshold) so that
// E[D(C(x))] = x; the "unscaled" flag decodes the raw values (biased but contractive,
// the variant for error feedback and CHOCO).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "compress/codec_math.h"
#include "compress/codecs.h"
#include "compress/index_coding.h"
#include "compress/parallel.h"

namespace murmur::compress {
namespace {

// Appends to `hits` every i in [b, e) with pred(i0, j) (i = i0 + j), in order; false if bad(i0, j)
// for any i. Both are evaluated 32 at a time into bit masks (branch-free, vectorisable); only hits
// branch, and they are written through a pointer with room reserved per group (a push_back per hit
// was an eighth of a 1% topk encode). Groups start at multiples of 32 (b is a chunk start), so
// i0 >> 32 is constant in a group.
template <class Pred, class Bad>
MURMUR_SIMD_CLONES bool scan_hits(size_t b, size_t e, Pred pred, Bad bad, std::vector<uint64_t>& hits) {
  size_t count = hits.size();
  uint32_t any_bad = 0;
  for (size_t i0 = b; i0 < e; i0 += 32) {
    uint32_t mask = 0;
    if (e - i0 >= 32) {  // a fixed trip count: the compiler turns the group into vector compares
#pragma omp simd reduction(| : mask, any_bad)
      for (uint32_t j = 0; j < 32; ++j) {
        mask |= uint32_t(pred(i0, j)) << j;
        any_bad |= uint32_t(bad(i0, j));
      }
    } else {
      for (uint32_t j = 0; j < uint32_t(e - i0); ++j) {
        mask |= uint32_t(pred(i0, j)) << j;
        any_bad |= uint32_t(bad(i0, j));
      }
    }
    if (mask == 0) continue;
    if (hits.size() < count + 32) hits.resize(std::max(2 * hits.size(), count + 32));
    uint64_t* out = hits.data() + count;
    for (; mask != 0; mask &= mask - 1) *out++ = i0 + size_t(std::countr_zero(mask));
    count = size_t(out - hits.data());
  }
  hits.resize(count);
  return any_bad == 0;
}

// All i in [0, n) with pred, in increasing order: one parallel pass, per-chunk lists joined.
// Nothing when bad(i) for some i.
template <class Pred, class Bad>
std::optional<std::vector<uint64_t>> select_hits(size_t n, Pred pred, Bad bad) {
  std::vector<std::vector<uint64_t>> part((n + kParallelGrain - 1) / kParallelGrain);
  const bool ok = parallel_chunks(n, kParallelGrain, [&](size_t b, size_t e) {
    return scan_hits(b, e, pred, bad, part[b / kParallelGrain]);
  });
  if (!ok) return std::nullopt;
  size_t total = 0;
  for (const auto& p : part) total += p.size();
  std::vector<uint64_t> idx;
  idx.reserve(total);
  for (const auto& p : part) idx.insert(idx.end(), p.begin(), p.end());
  return idx;
}

// Indices of |x| >= t, in order, checking in the same pass that x is finite (one read of x, not
// two): throws on NaN or infinity.
std::vector<uint64_t> select_at_least(std::span<const float> x, float t) {
  const float* p = x.data();
  auto idx = select_hits(
      x.size(), [p, t](uint64_t i0, uint32_t j) { return std::fabs(p[i0 + j]) >= t; },
      [p](uint64_t i0, uint32_t j) { return !(std::fabs(p[i0 + j]) <= std::numeric_limits<float>::max()); });
  if (!idx) throw_nonfinite_input("topk");
  return std::move(*idx);
}

// randk's index set: element_bits(key, i) < threshold.
std::vector<uint64_t> randk_indices(size_t n, uint64_t seed, uint32_t thr) {
  const uint32_t key = math::stream_key(seed, math::kStreamRandk);
  return *select_hits(
      n,
      [key, thr](uint64_t i0, uint32_t j) {
        return math::hash32((uint32_t(i0) + j) ^ math::element_key(key, i0)) < thr;
      },
      [](uint64_t, uint32_t) { return false; });
}

// Sample size: enough that about 256 samples fall above the threshold, at least 2^14.
size_t sample_size(size_t n, double fraction) {
  return size_t(std::min<double>(double(n), std::max(16384.0, std::ceil(256.0 / fraction))));
}

float sampled_threshold(std::span<const float> x, uint64_t seed, double fraction, double share) {
  std::vector<float> s;
  for (uint64_t at : sample_runs(x.size(), seed, fraction)) {
    // A NaN must not reach the selection below (no strict weak order); the scan rejects such input.
    for (uint64_t i = at; i < std::min<uint64_t>(x.size(), at + kSampleRun); ++i) {
      const float a = std::fabs(x[i]);
      s.push_back(a <= std::numeric_limits<float>::max() ? a : 0.0f);
    }
  }
  return sample_threshold(s, share);
}

std::vector<float> gather(std::span<const float> x, std::span<const uint64_t> idx) {
  std::vector<float> v(idx.size());
  for (size_t j = 0; j < idx.size(); ++j) v[j] = x[idx[j]];
  return v;
}

// Rejects values that are non-finite or overflow once scaled.
void check_values(std::span<const uint8_t> vals, float scale, const char* name) {
  const size_t k = vals.size() / 4;
  const float limit = std::numeric_limits<float>::max() / scale;
  bool ok = parallel_chunks(k, kParallelGrain, [&](size_t b, size_t e) {
    uint32_t bad = 0;
    for (size_t j = b; j < e; ++j) bad |= uint32_t(!(std::fabs(load_f32(vals.data() + 4 * j)) <= limit));
    return bad == 0;
  });
  if (!ok) throw DecodeError(std::string(name) + " payload holds NaN, infinity or an overflowing value");
}

// out[idx[j]] += alpha * (vals[j] * scale); indices are distinct, so chunks run in parallel.
void scatter(const std::vector<uint64_t>& idx, std::span<const uint8_t> vals, float scale, const Sink& sink) {
  float* out = sink.out.data();
  const float alpha = sink.alpha;
  parallel_chunks(idx.size(), kParallelGrain, [&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) {
      out[idx[j]] = math::accumulate(out[idx[j]], alpha, load_f32(vals.data() + 4 * j), scale);
    }
    return true;
  });
}

}  // namespace

uint64_t topk_count(double fraction, size_t n) {
  return n == 0 ? 0 : std::clamp<uint64_t>(uint64_t(std::llround(fraction * double(n))), 1, n);
}

uint32_t randk_threshold(double fraction) {
  return uint32_t(std::clamp(std::llround(fraction * 4294967296.0), 1LL, 4294967295LL));
}

std::vector<uint64_t> sample_runs(size_t n, uint64_t seed, double fraction) {
  const size_t runs = std::max<size_t>(1, sample_size(n, fraction) / kSampleRun), stride = n / runs;
  const uint32_t key = math::stream_key(seed, math::kStreamSample);
  std::vector<uint64_t> at(runs);
  for (size_t j = 0; j < runs; ++j) at[j] = j * stride + math::element_bits(key, j) % stride;
  return at;
}

float sample_threshold(std::vector<float>& s, double share) {
  const size_t r = std::clamp<size_t>(size_t(std::ceil(share * double(s.size()))), 1, s.size());
  if (r > s.size() / 16) {
    std::nth_element(s.begin(), s.begin() + ptrdiff_t(r - 1), s.end(), std::greater<float>());
    return s[r - 1];
  }
  // A small share: a min-heap of the r largest seen, which most samples pass with one compare
  // (nth_element partitions and swaps the whole sample several times). The same r-th largest value.
  std::vector<float> heap(s.begin(), s.begin() + ptrdiff_t(r));
  std::make_heap(heap.begin(), heap.end(), std::greater<float>());
  for (size_t i = r; i < s.size(); ++i) {
    if (!(s[i] > heap.front())) continue;
    std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
    heap.back() = s[i];
    std::push_heap(heap.begin(), heap.end(), std::greater<float>());
  }
  return heap.front();
}

std::vector<uint64_t> pick_largest(std::span<const uint64_t> cand, std::span<const float> vals, uint64_t k) {
  std::vector<uint32_t> order(cand.size());
  std::iota(order.begin(), order.end(), 0U);
  // Largest |x| first, ties to the lower index, so the chosen set is fully determined.
  auto before = [&](uint32_t a, uint32_t b) {
    const float fa = std::fabs(vals[a]), fb = std::fabs(vals[b]);
    return fa > fb || (fa == fb && a < b);
  };
  std::nth_element(order.begin(), order.begin() + ptrdiff_t(k - 1), order.end(), before);
  order.resize(size_t(k));
  std::sort(order.begin(), order.end());
  std::vector<uint64_t> idx(order.size());
  for (size_t j = 0; j < order.size(); ++j) idx[j] = cand[order[j]];
  return idx;
}

void write_topk(std::span<const uint64_t> idx, std::span<const float> x_at_idx, bool approx, ByteWriter& w) {
  const int b = choose_rice_param(idx);
  w.u64(idx.size());
  w.u8(uint8_t(b));
  w.u8(approx ? 1 : 0);
  w.u16(0);
  w.u32(0);
  w.f32s(x_at_idx);
  encode_indices(idx, b, w);
}

void encode_topk(const CodecSpec& spec, std::span<const float> x, uint64_t seed, ByteWriter& w) {
  const size_t n = x.size();
  const uint64_t k = topk_count(spec.fraction, n);
  // select_at_least checks that x is finite; the one path without it checks here.
  if (!spec.approx && k >= n / 4 && !all_finite(x)) throw_nonfinite_input("topk");
  std::vector<uint64_t> idx;
  if (spec.approx && n > 0) {
    // Never send zeros: when more than the fraction is zero, fewer values go.
    const float t = sampled_threshold(x, seed, spec.fraction, spec.fraction);
    idx = select_at_least(x, std::max(t, std::numeric_limits<float>::denorm_min()));
  } else if (n > 0) {
    // Candidates above a sampled threshold that keeps about twice k; all elements if too few.
    std::vector<uint64_t> cand;
    if (k < n / 4) cand = select_at_least(x, sampled_threshold(x, seed, spec.fraction, 2.0 * spec.fraction));
    if (cand.size() < k) {
      cand.resize(n);
      std::iota(cand.begin(), cand.end(), uint64_t(0));
    }
    idx = pick_largest(cand, gather(x, cand), k);
  }
  write_topk(idx, gather(x, idx), spec.approx, w);
}

SparseBody parse_topk(ByteReader& r, size_t n) {
  SparseBody body;
  const uint64_t k = r.u64("k");
  const int b = r.u8("rice parameter");
  if (r.u8("flags") > 1 || r.u16("reserved") != 0 || r.u32("reserved") != 0) {
    throw DecodeError("topk: unknown flags or non-zero reserved field");
  }
  if (k > n)
    throw DecodeError("topk k = " + std::to_string(k) + " exceeds the element count " + std::to_string(n));
  body.vals = r.bytes(4 * k, "topk values");
  check_values(body.vals, 1.0f, "topk");
  decode_indices(r.bytes(r.remaining(), "index stream"), k, b, n, body.idx);
  return body;
}

void decode_topk(ByteReader& r, const Sink& sink) {
  const SparseBody body = parse_topk(r, sink.out.size());
  sink.begin();
  scatter(body.idx, body.vals, 1.0f, sink);
}

void write_randk(uint64_t seed, uint32_t threshold, bool unscaled, std::span<const float> vals,
                 ByteWriter& w) {
  w.u64(seed);
  w.u32(threshold);
  w.u8(unscaled ? 1 : 0);
  w.u8(0);
  w.u16(0);
  w.u64(vals.size());
  w.f32s(vals);
}

void encode_randk(const CodecSpec& spec, std::span<const float> x, uint64_t seed, ByteWriter& w) {
  if (!all_finite(x)) throw_nonfinite_input("randk");
  const uint32_t thr = randk_threshold(spec.fraction);
  write_randk(seed, thr, spec.unscaled, gather(x, randk_indices(x.size(), seed, thr)), w);
}

SparseBody parse_randk(ByteReader& r, size_t n) {
  SparseBody body;
  body.seed = r.u64("seed");
  body.threshold = r.u32("threshold");
  const uint8_t flags = r.u8("flags");
  if (flags > 1 || r.u8("reserved") != 0 || r.u16("reserved") != 0) {
    throw DecodeError("randk: unknown flags or non-zero reserved field");
  }
  if (body.threshold == 0) throw DecodeError("randk threshold is 0");
  const uint64_t count = r.u64("count");
  if (count > n) throw DecodeError("randk count " + std::to_string(count) + " exceeds the element count");
  body.vals = r.bytes(4 * count, "randk values");
  r.expect_end("randk");
  body.scale = (flags & 1) ? 1.0f : float(4294967296.0 / double(body.threshold));
  check_values(body.vals, body.scale, "randk");
  return body;
}

void decode_randk(ByteReader& r, const Sink& sink) {
  SparseBody body = parse_randk(r, sink.out.size());
  body.idx = randk_indices(sink.out.size(), body.seed, body.threshold);
  if (body.idx.size() != body.vals.size() / 4) {
    throw DecodeError("randk payload has " + std::to_string(body.vals.size() / 4) +
                      " values, its seed selects " + std::to_string(body.idx.size()));
  }
  sink.begin();
  scatter(body.idx, body.vals, body.scale, sink);
}

}  // namespace murmur::compress

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
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "compress/codec_math.h"
#include "compress/codecs.h"
#include "compress/index_coding.h"
#include "compress/parallel.h"

namespace murmur::compress {
namespace {

// Calls fn(i) for every i in [b, e) with pred(i), in order. The predicate is evaluated
// 64 at a time into a bit mask (branch-free, vectorisable); only hits branch.
template <class Pred, class Fn>
inline void for_each_hit(size_t b, size_t e, Pred&& pred, Fn&& fn) {
  for (size_t i0 = b; i0 < e; i0 += 64) {
    const size_t m = std::min<size_t>(64, e - i0);
    uint64_t mask = 0;
#pragma omp simd reduction(| : mask)
    for (size_t j = 0; j < m; ++j) mask |= uint64_t(pred(i0 + j)) << j;
    for (; mask != 0; mask &= mask - 1) fn(i0 + size_t(std::countr_zero(mask)));
  }
}

// Per-chunk hit counts turned into exclusive offsets (entry c = hits before chunk c).
template <class Pred>
std::vector<uint64_t> hit_offsets(size_t n, Pred&& pred) {
  const size_t chunks = (n + kParallelGrain - 1) / kParallelGrain;
  std::vector<uint64_t> off(chunks + 1, 0);
  parallel_chunks(n, kParallelGrain, [&](size_t b, size_t e) {
    uint64_t c = 0;
    for_each_hit(b, e, pred, [&](size_t) { ++c; });
    off[b / kParallelGrain + 1] = c;
    return true;
  });
  std::partial_sum(off.begin(), off.end(), off.begin());
  return off;
}

// Indices of |x| >= t, in order; parallel over chunks, concatenated.
MURMUR_SIMD_CLONES std::vector<uint64_t> select_at_least(std::span<const float> x, float t) {
  auto pred = [x, t](size_t i) { return std::fabs(x[i]) >= t; };
  const std::vector<uint64_t> off = hit_offsets(x.size(), pred);
  std::vector<uint64_t> idx(off.back());
  parallel_chunks(x.size(), kParallelGrain, [&](size_t b, size_t e) {
    uint64_t* dst = idx.data() + off[b / kParallelGrain];
    for_each_hit(b, e, pred, [&](size_t i) { *dst++ = i; });
    return true;
  });
  return idx;
}

// The r-th largest |x| (1-based) over a stratified random sample of m elements.
float sampled_magnitude(std::span<const float> x, uint64_t seed, size_t m, size_t r) {
  const size_t n = x.size(), stride = n / m;
  const uint32_t key = math::stream_key(seed, math::kStreamSample);
  std::vector<float> s(m);
  for (size_t j = 0; j < m; ++j) s[j] = std::fabs(x[j * stride + math::element_bits(key, j) % stride]);
  r = std::clamp<size_t>(r, 1, m);
  std::nth_element(s.begin(), s.begin() + ptrdiff_t(r - 1), s.end(), std::greater<float>());
  return s[r - 1];
}

// Sample size: enough that about 256 samples fall above the threshold, at least 2^16.
size_t sample_size(size_t n, double fraction) {
  return size_t(std::min<double>(double(n), std::max(65536.0, std::ceil(256.0 / fraction))));
}

std::vector<uint64_t> topk_exact(std::span<const float> x, uint64_t k, uint64_t seed, double fraction) {
  const size_t n = x.size();
  std::vector<uint64_t> cand;
  if (k < n / 4) {  // prune with a sampled threshold that keeps about twice k candidates
    const size_t m = sample_size(n, fraction);
    const float t = sampled_magnitude(x, seed, m, size_t(std::ceil(2.0 * fraction * double(m))) + 64);
    cand = select_at_least(x, t);
  }
  if (cand.size() < k) {
    cand.resize(n);
    std::iota(cand.begin(), cand.end(), uint64_t(0));
  }
  // Largest |x| first, ties to the lower index, so the chosen set is fully determined.
  auto before = [x](uint64_t a, uint64_t b) {
    const float fa = std::fabs(x[a]), fb = std::fabs(x[b]);
    return fa > fb || (fa == fb && a < b);
  };
  std::nth_element(cand.begin(), cand.begin() + ptrdiff_t(k - 1), cand.end(), before);
  cand.resize(k);
  std::sort(cand.begin(), cand.end());
  return cand;
}

std::vector<uint64_t> topk_approx(std::span<const float> x, uint64_t seed, double fraction) {
  const size_t m = sample_size(x.size(), fraction);
  const float t = sampled_magnitude(x, seed, m, size_t(std::ceil(fraction * double(m))));
  // Never send zeros: when more than the fraction is zero, fewer values go.
  return select_at_least(x, std::max(t, std::numeric_limits<float>::denorm_min()));
}

// Rejects values that are non-finite or overflow once scaled.
void check_values(std::span<const uint8_t> vals, float scale, const char* name) {
  const size_t k = vals.size() / 4;
  const float limit = std::numeric_limits<float>::max() / scale;
  bool ok = parallel_chunks(k, kParallelGrain, [&](size_t b, size_t e) {
    uint32_t bad = 0;
    for (size_t j = b; j < e; ++j) {
      const float v = load_f32(vals.data() + 4 * j);
      bad |= uint32_t(!(std::fabs(v) <= limit));
    }
    return bad == 0;
  });
  if (!ok) throw DecodeError(std::string(name) + " payload holds NaN, infinity or an overflowing value");
}

uint32_t randk_threshold(double fraction) {
  return uint32_t(std::clamp(std::llround(fraction * 4294967296.0), 1LL, 4294967295LL));
}

float randk_scale(uint32_t threshold, bool unscaled) {
  return unscaled ? 1.0f : float(4294967296.0 / double(threshold));
}

}  // namespace

void encode_topk(const CodecSpec& spec, std::span<const float> x, uint64_t seed, ByteWriter& w) {
  if (!all_finite(x)) throw_nonfinite_input("topk");
  const size_t n = x.size();
  std::vector<uint64_t> idx;
  if (n > 0) {
    const uint64_t k = std::clamp<uint64_t>(uint64_t(std::llround(spec.fraction * double(n))), 1, n);
    idx = spec.approx ? topk_approx(x, seed, spec.fraction) : topk_exact(x, k, seed, spec.fraction);
  }
  const int b = choose_rice_param(idx);
  w.u64(idx.size());
  w.u8(uint8_t(b));
  w.u8(spec.approx ? 1 : 0);
  w.u16(0);
  w.u32(0);
  uint8_t* vals = w.extend(4 * idx.size());
  for (size_t j = 0; j < idx.size(); ++j) store_f32(vals + 4 * j, x[idx[j]]);
  encode_indices(idx, b, w);
}

void decode_topk(ByteReader& r, const Sink& sink) {
  const uint64_t n = sink.out.size();
  const uint64_t k = r.u64("k");
  const int b = r.u8("rice parameter");
  if (r.u8("flags") > 1 || r.u16("reserved") != 0 || r.u32("reserved") != 0) {
    throw DecodeError("topk: unknown flags or non-zero reserved field");
  }
  if (k > n) throw DecodeError("topk k = " + std::to_string(k) + " exceeds the element count " + std::to_string(n));
  std::span<const uint8_t> vals = r.bytes(4 * k, "topk values");
  check_values(vals, 1.0f, "topk");
  std::vector<uint64_t> idx;
  decode_indices(r.bytes(r.remaining(), "index stream"), k, b, n, idx);
  sink.begin();
  float* out = sink.out.data();
  const float alpha = sink.alpha;
  parallel_chunks(idx.size(), kParallelGrain, [&](size_t b0, size_t e0) {
    for (size_t j = b0; j < e0; ++j) out[idx[j]] = math::accumulate(out[idx[j]], alpha, load_f32(vals.data() + 4 * j), 1.0f);
    return true;
  });
}

void encode_randk(const CodecSpec& spec, std::span<const float> x, uint64_t seed, ByteWriter& w) {
  if (!all_finite(x)) throw_nonfinite_input("randk");
  const uint32_t thr = randk_threshold(spec.fraction);
  const uint32_t key = math::stream_key(seed, math::kStreamRandk);
  auto pred = [key, thr](size_t i) { return math::element_bits(key, i) < thr; };
  const std::vector<uint64_t> off = hit_offsets(x.size(), pred);
  w.u64(seed);
  w.u32(thr);
  w.u8(spec.unscaled ? 1 : 0);
  w.u8(0);
  w.u16(0);
  w.u64(off.back());
  uint8_t* vals = w.extend(4 * off.back());
  parallel_chunks(x.size(), kParallelGrain, [&](size_t b, size_t e) {
    uint8_t* dst = vals + 4 * off[b / kParallelGrain];
    for_each_hit(b, e, pred, [&](size_t i) {
      store_f32(dst, x[i]);
      dst += 4;
    });
    return true;
  });
}

void decode_randk(ByteReader& r, const Sink& sink) {
  const size_t n = sink.out.size();
  const uint64_t seed = r.u64("seed");
  const uint32_t thr = r.u32("threshold");
  const uint8_t flags = r.u8("flags");
  if (flags > 1 || r.u8("reserved") != 0 || r.u16("reserved") != 0) {
    throw DecodeError("randk: unknown flags or non-zero reserved field");
  }
  if (thr == 0) throw DecodeError("randk threshold is 0");
  const uint64_t count = r.u64("count");
  if (count > n) throw DecodeError("randk count " + std::to_string(count) + " exceeds the element count");
  std::span<const uint8_t> vals = r.bytes(4 * count, "randk values");
  r.expect_end("randk");
  const float scale = randk_scale(thr, flags & 1);
  check_values(vals, scale, "randk");
  const uint32_t key = math::stream_key(seed, math::kStreamRandk);
  auto pred = [key, thr](size_t i) { return math::element_bits(key, i) < thr; };
  const std::vector<uint64_t> off = hit_offsets(n, pred);
  if (off.back() != count) {
    throw DecodeError("randk payload has " + std::to_string(count) + " values, its seed selects " +
                      std::to_string(off.back()));
  }
  sink.begin();
  float* out = sink.out.data();
  const float alpha = sink.alpha;
  parallel_chunks(n, kParallelGrain, [&](size_t b, size_t e) {
    const uint8_t* src = vals.data() + 4 * off[b / kParallelGrain];
    for_each_hit(b, e, pred, [&](size_t i) {
      out[i] = math::accumulate(out[i], alpha, load_f32(src), scale);
      src += 4;
    });
    return true;
  });
}

}  // namespace murmur::compress

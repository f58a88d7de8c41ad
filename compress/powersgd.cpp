// PowerSGD (Vogels et al., 2019): each matrix M (rows, cols) is sent as rank-r factors,
// P = orth(M Q) (rows, r) and Q' = Mᵀ P (cols, r), so M ≈ P Q'ᵀ (the projection of M onto
// span(P): contractive). Q' warm-starts the next round (sender-side state); the payload
// carries both factors, so a receiver needs no state. Elements outside every matrix go
// through the fallback codec as a nested payload.
//
// Body: u32 rank, u32 m (matrix count),
//       m x {u64 offset, u32 rows, u32 cols},
//       per matrix, r = min(rank, rows, cols): f32 P[rows][r], f32 Q[cols][r],
//       the fallback payload (header + body) for the remaining elements in index order.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "compress/codec_math.h"
#include "compress/codecs.h"
#include "compress/parallel.h"

namespace murmur::compress {
namespace {

constexpr uint32_t kMaxRank = 256;

size_t factor_rank(uint32_t rank, const MatrixView& m) { return std::min<size_t>({rank, m.rows, m.cols}); }

// Modified Gram-Schmidt, two passes ("twice is enough"), on the columns of A (rows, r)
// row-major. A column that is (numerically) in the span of the previous ones becomes zero.
void orthonormalise(float* a, size_t rows, size_t r) {
  std::vector<double> col(rows);
  for (size_t j = 0; j < r; ++j) {
    for (size_t i = 0; i < rows; ++i) col[i] = a[i * r + j];
    double norm0 = 0;
    for (double v : col) norm0 += v * v;
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t p = 0; p < j; ++p) {
        double dot = 0;
        for (size_t i = 0; i < rows; ++i) dot += double(a[i * r + p]) * col[i];
        for (size_t i = 0; i < rows; ++i) col[i] -= dot * double(a[i * r + p]);
      }
    }
    double norm = 0;
    for (double v : col) norm += v * v;
    const bool keep = norm > 1e-12 * norm0 && norm > 0;
    const double inv = keep ? 1.0 / std::sqrt(norm) : 0.0;
    for (size_t i = 0; i < rows; ++i) a[i * r + j] = float(col[i] * inv);
  }
}

void check_layout(std::span<const MatrixView> layout, size_t n) {
  uint64_t next = 0;
  for (const MatrixView& m : layout) {
    if (m.rows == 0 || m.cols == 0) throw std::invalid_argument("powersgd layout: empty matrix");
    if (m.rows > uint32_t(INT32_MAX) || m.cols > uint32_t(INT32_MAX)) {
      throw std::invalid_argument("powersgd layout: matrix side beyond BLAS's int range");
    }
    if (m.offset < next || m.offset > n || uint64_t(m.rows) * m.cols > n - m.offset) {
      throw std::invalid_argument("powersgd layout: matrices must be sorted, disjoint and inside the span");
    }
    next = m.offset + uint64_t(m.rows) * m.cols;
  }
}

// Calls fn(begin, end) for each maximal run of elements outside every matrix.
template <class Fn>
void for_each_gap(std::span<const MatrixView> layout, uint64_t n, Fn&& fn) {
  uint64_t at = 0;
  for (const MatrixView& m : layout) {
    if (m.offset > at) fn(at, m.offset);
    at = m.offset + uint64_t(m.rows) * m.cols;
  }
  if (n > at) fn(at, n);
}

}  // namespace

void encode_powersgd(const CodecSpec& spec, std::span<const float> x, std::span<const MatrixView> layout,
                     uint64_t seed, std::vector<std::vector<float>>& warm, ByteWriter& w) {
  if (layout.empty()) throw std::invalid_argument("powersgd needs a tensor layout (EncodeOptions::layout)");
  check_layout(layout, x.size());
  if (!all_finite(x)) throw_nonfinite_input("powersgd");
  if (warm.size() != layout.size()) warm.assign(layout.size(), {});
  w.u32(spec.rank);
  w.u32(uint32_t(layout.size()));
  for (const MatrixView& m : layout) {
    w.u64(m.offset);
    w.u32(m.rows);
    w.u32(m.cols);
  }
  std::vector<float> p;
  for (size_t t = 0; t < layout.size(); ++t) {
    const MatrixView& m = layout[t];
    const size_t r = factor_rank(spec.rank, m), rows = m.rows, cols = m.cols;
    std::vector<float>& q = warm[t];
    if (q.size() != cols * r) {  // cold start: a seeded random Q (cols, r)
      q.resize(cols * r);
      const uint32_t key = math::stream_key(seed + t, math::kStreamPowerSgd);
      for (size_t i = 0; i < q.size(); ++i) q[i] = 2.0f * math::uniform24(math::element_bits(key, i)) - 1.0f;
    }
    const float* a = x.data() + m.offset;
    p.resize(rows * r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(r), int(cols), 1.0f, a, int(cols),
                q.data(), int(r), 0.0f, p.data(), int(r));  // P = M Q
    orthonormalise(p.data(), rows, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(cols), int(r), int(rows), 1.0f, a, int(cols),
                p.data(), int(r), 0.0f, q.data(), int(r));  // Q = Mᵀ P
    uint8_t* dst = w.extend(4 * (rows + cols) * r);
    std::memcpy(dst, p.data(), 4 * rows * r);
    std::memcpy(dst + 4 * rows * r, q.data(), 4 * cols * r);
  }
  std::vector<float> rest;
  for_each_gap(layout, x.size(), [&](uint64_t b, uint64_t e) { rest.insert(rest.end(), x.begin() + b, x.begin() + e); });
  const CodecSpec fb = fallback_spec(spec);
  write_header(w, fb.codec, rest.size());
  encode_body(fb, rest, seed, w);
}

void decode_powersgd(ByteReader& r, const Sink& sink) {
  const uint64_t n = sink.out.size();
  const uint32_t rank = r.u32("rank");
  if (rank == 0 || rank > kMaxRank) throw DecodeError("powersgd rank " + std::to_string(rank) + " out of range");
  const uint32_t count = r.u32("matrix count");
  if (count > r.remaining() / 16) throw DecodeError("powersgd matrix table truncated");
  std::vector<MatrixView> layout(count);
  uint64_t next = 0, covered = 0;
  for (MatrixView& m : layout) {
    m.offset = r.u64("matrix offset");
    m.rows = r.u32("matrix rows");
    m.cols = r.u32("matrix cols");
    if (m.rows == 0 || m.cols == 0 || m.offset < next || m.offset > n ||
        uint64_t(m.rows) * m.cols > n - m.offset) {
      throw DecodeError("powersgd matrix table: empty, overlapping or out-of-range matrix");
    }
    next = m.offset + uint64_t(m.rows) * m.cols;
    covered += uint64_t(m.rows) * m.cols;
  }
  // Factors: finite, and small enough that no entry of P Qᵀ can overflow.
  std::vector<std::span<const uint8_t>> factors(count);
  for (uint32_t t = 0; t < count; ++t) {
    const MatrixView& m = layout[t];
    const uint64_t rk = factor_rank(rank, m);
    factors[t] = r.bytes(4 * (uint64_t(m.rows) + m.cols) * rk, "powersgd factors");
    float pmax = 0, qmax = 0;
    bool finite = true;
    for (uint64_t i = 0; i < (uint64_t(m.rows) + m.cols) * rk; ++i) {
      const float v = std::fabs(load_f32(factors[t].data() + 4 * i));
      finite = finite && math::is_finite(v);
      float& mx = i < m.rows * rk ? pmax : qmax;
      mx = std::max(mx, v);
    }
    if (!finite || double(pmax) * double(qmax) * double(rk) > 0.5 * std::numeric_limits<float>::max()) {
      throw DecodeError("powersgd factors hold NaN, infinity or overflowing values");
    }
  }
  std::vector<float> rest(n - covered, 0.0f);
  ByteReader fr(r.bytes(r.remaining(), "fallback payload"));
  const Header fh = read_header(fr, rest.size());
  if (fh.codec != CodecId::kFp32 && fh.codec != CodecId::kFp16 && fh.codec != CodecId::kBf16 &&
      fh.codec != CodecId::kInt8) {
    throw DecodeError(std::string("powersgd fallback codec ") + codec_name(fh.codec) + " is not allowed");
  }
  decode_body(fh.codec, fr, Sink{rest, 1.0f, true});

  sink.begin();
  float* out = sink.out.data();
  const float alpha = sink.alpha;
  std::vector<float> qt;
  for (uint32_t t = 0; t < count; ++t) {
    const MatrixView& m = layout[t];
    const size_t rk = factor_rank(rank, m), rows = m.rows, cols = m.cols;
    const uint8_t* pf = factors[t].data();
    const uint8_t* qf = pf + 4 * rows * rk;
    qt.resize(rk * cols);  // Qᵀ (r, cols): rows of the product become contiguous sums
    for (size_t j = 0; j < cols; ++j) {
      for (size_t c = 0; c < rk; ++c) qt[c * cols + j] = load_f32(qf + 4 * (j * rk + c));
    }
    float* base = out + m.offset;
    parallel_chunks(rows, std::max<size_t>(1, kParallelGrain / cols), [&](size_t i0, size_t i1) {
      std::vector<float> acc(cols);
      for (size_t i = i0; i < i1; ++i) {
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (size_t c = 0; c < rk; ++c) {
          const float pic = load_f32(pf + 4 * (i * rk + c));
          const float* qrow = qt.data() + c * cols;
#pragma omp simd
          for (size_t j = 0; j < cols; ++j) acc[j] += pic * qrow[j];
        }
        float* row = base + i * cols;
#pragma omp simd
        for (size_t j = 0; j < cols; ++j) row[j] = math::accumulate(row[j], alpha, acc[j], 1.0f);
      }
      return true;
    });
  }
  const float* src = rest.data();
  for_each_gap(layout, n, [&](uint64_t b, uint64_t e) {
    for (uint64_t i = b; i < e; ++i) out[i] = math::accumulate(out[i], alpha, *src++, 1.0f);
  });
}

}  // namespace murmur::compress

// CUDA codecs. Payload framing, parsing and validation run on the host with the CPU code
// (codecs.h: the payload is host memory anyway); the O(n) work runs here. Kernels use the
// same scalar functions as the CPU (codec_math.h) and this file is compiled with
// --fmad=false, so deterministic codecs give the CPU's bits:
//   fp32/fp16/bf16, int8/int4/int2/sign: encode and decode kernels;
//   randk: index selection by the seeded hash, gather and scatter kernels;
//   topk: threshold selection and gather here, the sampled threshold, the exact variant's
//         final pick among candidates and the Rice coding on the host;
//   powersgd: on the host (copies through host memory).
#include <cuda_runtime.h>
#include <thrust/copy.h>
#include <thrust/count.h>
#include <thrust/execution_policy.h>
#include <thrust/iterator/counting_iterator.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "compress/codec_math.h"
#include "compress/codecs.h"
#include "compress/cuda/codec_cuda.h"

namespace murmur::compress::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

// Device scratch (RAII).
template <class T>
class Scratch {
 public:
  explicit Scratch(size_t n) : n_(n) {
    if (n > 0) check(cudaMalloc(&p_, n * sizeof(T)), "cudaMalloc");
  }
  ~Scratch() { cudaFree(p_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return p_; }
  void upload(const void* host, size_t bytes) { check(cudaMemcpy(p_, host, bytes, cudaMemcpyHostToDevice), "upload"); }
  void download(void* host, size_t bytes) const {
    check(cudaMemcpy(host, p_, bytes, cudaMemcpyDeviceToHost), "download");
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

constexpr int kThreads = 256;
unsigned grid_for(size_t n) { return unsigned(std::clamp<size_t>((n + kThreads - 1) / kThreads, 1, 65535 * 8)); }

// A flag in device memory that kernels raise on bad input.
class Flag {
 public:
  Flag() { check(cudaMemset(f_.get(), 0, sizeof(unsigned)), "cudaMemset"); }
  unsigned* get() { return f_.get(); }
  bool raised() const {
    unsigned v = 0;
    f_.download(&v, sizeof v);
    return v != 0;
  }

 private:
  Scratch<unsigned> f_{1};
};

__device__ inline uint64_t global_thread() { return uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline uint64_t grid_threads() { return uint64_t(gridDim.x) * blockDim.x; }

// ---- fp32 / fp16 / bf16 ----------------------------------------------------------------

template <class T>
__global__ void cast_encode(const float* __restrict__ x, size_t n, typename T::Word* __restrict__ out, unsigned* bad) {
  for (uint64_t i = global_thread(); i < n; i += grid_threads()) {
    const typename T::Word w = T::from(x[i]);
    if (!T::finite(w)) *bad = 1;
    out[i] = w;
  }
}

template <class T>
__global__ void cast_check(const typename T::Word* __restrict__ in, size_t n, unsigned* bad) {
  for (uint64_t i = global_thread(); i < n; i += grid_threads()) {
    if (!T::finite(in[i])) *bad = 1;
  }
}

template <class T>
__global__ void cast_apply(const typename T::Word* __restrict__ in, size_t n, float alpha, float* __restrict__ out) {
  for (uint64_t i = global_thread(); i < n; i += grid_threads()) out[i] = math::accumulate(out[i], alpha, T::to(in[i]), 1.0f);
}

template <class T>
void encode_cast(CodecId id, const float* x, size_t n, ByteWriter& w) {
  using Word = typename T::Word;
  Scratch<Word> words(n);
  Flag bad;
  cast_encode<T><<<grid_for(n), kThreads>>>(x, n, words.get(), bad.get());
  check(cudaGetLastError(), "cast_encode");
  uint8_t* dst = w.extend(n * sizeof(Word));
  words.download(dst, n * sizeof(Word));
  if (bad.raised()) throw_nonfinite_input(codec_name(id));
}

template <class T>
void decode_cast(CodecId id, std::span<const uint8_t> values, float* out, size_t n, float alpha) {
  using Word = typename T::Word;
  Scratch<Word> words(n);
  words.upload(values.data(), values.size());
  Flag bad;
  cast_check<T><<<grid_for(n), kThreads>>>(words.get(), n, bad.get());
  check(cudaGetLastError(), "cast_check");
  if (bad.raised()) throw DecodeError(std::string(codec_name(id)) + " payload holds NaN or infinity");
  cast_apply<T><<<grid_for(n), kThreads>>>(words.get(), n, alpha, out);
  check(cudaGetLastError(), "cast_apply");
}

// ---- int8 / int4 / int2 / sign: one warp per block ----------------------------------------

struct QuantArgs {
  const float* x;
  size_t n, bs, nb;
  int bits;
  bool stochastic, sign;
  uint32_t key;
  float* scales;
  uint8_t* codes;
  unsigned* bad;
};

// Code of element i (global) of a block with inverse scale inv; x beyond n counts as 0, as
// the CPU's zero padding of the last block.
__device__ inline uint32_t quant_code(const QuantArgs& a, const math::QuantGrid& g, float inv, uint64_t i) {
  const float v = i < a.n ? a.x[i] : 0.0f;
  if (a.sign) return 1U - (math::float_bits(v) >> 31);
  if (a.stochastic) {
    const float u = math::uniform24(math::element_bits(a.key, i));
    return uint32_t(math::quantise_stochastic(v * g.mul, inv, g.add, g.lo, g.hi, u)) & ((1U << a.bits) - 1);
  }
  return uint32_t(math::quantise_nearest(v * g.mul, inv, g.add, g.lo, g.hi)) & ((1U << a.bits) - 1);
}

__global__ void quant_encode(QuantArgs a) {
  const unsigned lane = threadIdx.x % 32;
  const uint64_t warp = global_thread() / 32, warps = grid_threads() / 32;
  const math::QuantGrid g = math::quant_grid(a.bits);
  const unsigned per = 8 / a.bits;
  for (uint64_t b = warp; b < a.nb; b += warps) {
    const uint64_t first = b * a.bs;
    const size_t len = a.bs < a.n - first ? a.bs : size_t(a.n - first);
    float absmax = 0.0f;
    bool bad = false;
    for (size_t j = lane; j < len; j += 32) {
      const float v = a.x[first + j];
      bad |= !math::is_finite(v);
      const float m = fabsf(v);
      absmax = absmax < m ? m : absmax;
    }
    for (int off = 16; off > 0; off >>= 1) absmax = fmaxf(absmax, __shfl_xor_sync(0xffffffffU, absmax, off));
    if (__any_sync(0xffffffffU, bad) && lane == 0) *a.bad = 1;
    float scale = __fdiv_rn(absmax, g.qmax);
    const float inv = a.sign ? 0.0f : math::quant_inv(absmax, g.qmax);
    if (g.mid_rise && !a.stochastic) {  // least-squares scale, canonical lane order (math::fold_lanes)
      float num = 0.0f, den = 0.0f;
      for (size_t j = lane; j < len; j += 32) {
        const float lv = math::quant_level(quant_code(a, g, inv, first + j), a.bits);
        num += a.x[first + j] * lv;
        den += lv * lv;
      }
      for (int off = 16; off > 0; off >>= 1) {
        num += __shfl_down_sync(0xffffffffU, num, off);
        den += __shfl_down_sync(0xffffffffU, den, off);
      }
      scale = __fdiv_rn(num, den);
      scale = __shfl_sync(0xffffffffU, scale, 0);
    }
    if (lane == 0) {
      a.scales[b] = scale;
      if (!math::is_finite(scale)) *a.bad = 1;
    }
    const size_t bytes = (len * size_t(a.bits) + 7) / 8;
    uint8_t* out = a.codes + first * a.bits / 8;
    for (size_t t = lane; t < bytes; t += 32) {
      uint32_t byte = 0;
      for (unsigned j = 0; j < per; ++j) byte |= quant_code(a, g, inv, first + t * per + j) << (j * a.bits);
      out[t] = uint8_t(byte);
    }
  }
}

__global__ void quant_apply(const float* __restrict__ scales, const uint8_t* __restrict__ codes, size_t n, size_t bs,
                            int bits, float alpha, float* __restrict__ out) {
  for (uint64_t i = global_thread(); i < n; i += grid_threads()) {
    const uint64_t bit = i * uint64_t(bits);
    const uint32_t code = (codes[bit / 8] >> (bit % 8)) & ((1U << bits) - 1);
    out[i] = math::accumulate(out[i], alpha, math::quant_level(code, bits), scales[i / bs]);
  }
}

void encode_quant_cuda(const CodecSpec& spec, const float* x, size_t n, uint64_t seed, ByteWriter& w) {
  const int bits = quant_bits(spec.codec);
  const size_t bs = spec.block, nb = (n + bs - 1) / bs, code_bytes = (n * size_t(bits) + 7) / 8;
  w.u32(spec.block);
  w.u8(spec.stochastic ? 1 : 0);
  w.u8(0);
  w.u16(0);
  Scratch<uint8_t> body(4 * nb + code_bytes);
  Flag bad;
  QuantArgs a{x, n, bs, nb, bits, spec.stochastic, spec.codec == CodecId::kSign,
              math::stream_key(seed, math::kStreamRounding), reinterpret_cast<float*>(body.get()),
              body.get() + 4 * nb, bad.get()};
  quant_encode<<<unsigned(std::clamp<size_t>((nb + 7) / 8, 1, 65535 * 8)), kThreads>>>(a);
  check(cudaGetLastError(), "quant_encode");
  body.download(w.extend(4 * nb + code_bytes), 4 * nb + code_bytes);
  if (bad.raised()) throw_nonfinite_input(codec_name(spec.codec));
}

void decode_quant_cuda(CodecId id, ByteReader& r, float* out, size_t n, float alpha) {
  const QuantBody q = parse_quant(id, r, n);  // header, sizes and scales validated on the host
  // Scales and codes are adjacent in the payload: one copy.
  Scratch<uint8_t> body(q.scales.size() + q.codes.size());
  body.upload(q.scales.data(), q.scales.size() + q.codes.size());
  quant_apply<<<grid_for(n), kThreads>>>(reinterpret_cast<const float*>(body.get()), body.get() + q.scales.size(), n,
                                         q.block, quant_bits(id), alpha, out);
  check(cudaGetLastError(), "quant_apply");
}

// ---- sparse: selection, gather, scatter -----------------------------------------------------

struct RandkPick {
  uint32_t key, thr;
  __host__ __device__ bool operator()(uint64_t i) const { return math::element_bits(key, i) < thr; }
};
struct AtLeast {
  const float* x;
  float t;
  __host__ __device__ bool operator()(uint64_t i) const { return fabsf(x[i]) >= t; }
};

template <class Pred>
std::vector<uint64_t> select_indices(size_t n, Pred pred) {
  const thrust::counting_iterator<uint64_t> first(0), last(n);
  const size_t count = size_t(thrust::count_if(thrust::device, first, last, pred));
  std::vector<uint64_t> idx(count);
  Scratch<uint64_t> d(count);
  thrust::copy_if(thrust::device, first, last, d.get(), pred);  // raw pointer: device memory
  d.download(idx.data(), 8 * count);
  return idx;
}

__global__ void gather_kernel(const float* __restrict__ x, const uint64_t* __restrict__ idx, size_t k,
                              float* __restrict__ out) {
  for (uint64_t j = global_thread(); j < k; j += grid_threads()) out[j] = x[idx[j]];
}

__global__ void scatter_kernel(const uint64_t* __restrict__ idx, const float* __restrict__ vals, size_t k, float scale,
                               float alpha, float* __restrict__ out) {
  for (uint64_t j = global_thread(); j < k; j += grid_threads()) {
    out[idx[j]] = math::accumulate(out[idx[j]], alpha, vals[j], scale);
  }
}

__global__ void finite_kernel(const float* __restrict__ x, size_t n, unsigned* bad) {
  for (uint64_t i = global_thread(); i < n; i += grid_threads()) {
    if (!math::is_finite(x[i])) *bad = 1;
  }
}

void require_finite(const float* x, size_t n, const char* codec) {
  Flag bad;
  finite_kernel<<<grid_for(n), kThreads>>>(x, n, bad.get());
  check(cudaGetLastError(), "finite_kernel");
  if (bad.raised()) throw_nonfinite_input(codec);
}

std::vector<float> gather(const float* x, std::span<const uint64_t> idx) {
  std::vector<float> v(idx.size());
  Scratch<uint64_t> d_idx(idx.size());
  Scratch<float> d_v(idx.size());
  d_idx.upload(idx.data(), 8 * idx.size());
  gather_kernel<<<grid_for(idx.size()), kThreads>>>(x, d_idx.get(), idx.size(), d_v.get());
  check(cudaGetLastError(), "gather_kernel");
  d_v.download(v.data(), 4 * v.size());
  return v;
}

void scatter(std::span<const uint64_t> idx, std::span<const uint8_t> vals, float scale, float alpha, float* out) {
  Scratch<uint64_t> d_idx(idx.size());
  Scratch<float> d_v(idx.size());
  d_idx.upload(idx.data(), 8 * idx.size());
  d_v.upload(vals.data(), vals.size());
  scatter_kernel<<<grid_for(idx.size()), kThreads>>>(d_idx.get(), d_v.get(), idx.size(), scale, alpha, out);
  check(cudaGetLastError(), "scatter_kernel");
}

float sampled_threshold(const float* x, size_t n, uint64_t seed, double fraction, double share) {
  const std::vector<uint64_t> runs = sample_runs(n, seed, fraction);
  std::vector<uint64_t> at;
  for (uint64_t r : runs) {
    for (uint64_t i = r; i < std::min<uint64_t>(n, r + kSampleRun); ++i) at.push_back(i);
  }
  std::vector<float> s = gather(x, at);
  for (float& v : s) v = std::fabs(v);
  return sample_threshold(s, share);
}

void encode_topk_cuda(const CodecSpec& spec, const float* x, size_t n, uint64_t seed, ByteWriter& w) {
  require_finite(x, n, "topk");
  const uint64_t k = topk_count(spec.fraction, n);
  std::vector<uint64_t> idx;
  if (spec.approx && n > 0) {
    const float t = sampled_threshold(x, n, seed, spec.fraction, spec.fraction);
    idx = select_indices(n, AtLeast{x, std::max(t, std::numeric_limits<float>::denorm_min())});
  } else if (n > 0) {
    std::vector<uint64_t> cand;
    if (k < n / 4) cand = select_indices(n, AtLeast{x, sampled_threshold(x, n, seed, spec.fraction, 2.0 * spec.fraction)});
    if (cand.size() < k) cand = select_indices(n, AtLeast{x, 0.0f});
    idx = pick_largest(cand, gather(x, cand), k);
  }
  write_topk(idx, gather(x, idx), spec.approx, w);
}

void encode_randk_cuda(const CodecSpec& spec, const float* x, size_t n, uint64_t seed, ByteWriter& w) {
  require_finite(x, n, "randk");
  const uint32_t thr = randk_threshold(spec.fraction);
  const std::vector<uint64_t> idx = select_indices(n, RandkPick{math::stream_key(seed, math::kStreamRandk), thr});
  write_randk(seed, thr, spec.unscaled, gather(x, idx), w);
}

// PowerSGD and anything else without kernels: through host memory with the CPU codec.
void encode_on_host(Encoder& enc, const float* x, size_t n, const EncodeOptions& opt, std::vector<uint8_t>& payload) {
  std::vector<float> h(n);
  check(cudaMemcpy(h.data(), x, 4 * n, cudaMemcpyDeviceToHost), "download");
  enc.encode(h, opt, payload);
}

}  // namespace

bool device_visible(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    if (why) *why = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device";
    return false;
  }
  return true;
}

DeviceBuffer::DeviceBuffer(size_t n) : n_(n) {
  if (n > 0) check(cudaMalloc(&ptr_, 4 * n), "cudaMalloc");
}
DeviceBuffer::~DeviceBuffer() { cudaFree(ptr_); }
void DeviceBuffer::upload(std::span<const float> host) {
  check(cudaMemcpy(ptr_, host.data(), 4 * std::min(n_, host.size()), cudaMemcpyHostToDevice), "upload");
}
void DeviceBuffer::download(std::span<float> host) const {
  check(cudaMemcpy(host.data(), ptr_, 4 * std::min(n_, host.size()), cudaMemcpyDeviceToHost), "download");
}
void DeviceBuffer::copy_from(const DeviceBuffer& other) {
  check(cudaMemcpy(ptr_, other.ptr_, 4 * std::min(n_, other.n_), cudaMemcpyDeviceToDevice), "copy");
  check(cudaDeviceSynchronize(), "synchronize");
}

void encode(Encoder& encoder, const float* x, size_t n, const EncodeOptions& opt, std::vector<uint8_t>& payload) {
  const CodecSpec& spec = encoder.spec();
  if (spec.codec == CodecId::kPowerSgd) return encode_on_host(encoder, x, n, opt, payload);
  ByteWriter w(payload);
  write_header(w, spec.codec, n);
  switch (spec.codec) {
    case CodecId::kFp32: encode_cast<math::Fp32Cast>(spec.codec, x, n, w); break;
    case CodecId::kFp16: encode_cast<math::Fp16Cast>(spec.codec, x, n, w); break;
    case CodecId::kBf16: encode_cast<math::Bf16Cast>(spec.codec, x, n, w); break;
    case CodecId::kTopk: encode_topk_cuda(spec, x, n, opt.seed, w); break;
    case CodecId::kRandk: encode_randk_cuda(spec, x, n, opt.seed, w); break;
    default: encode_quant_cuda(spec, x, n, opt.seed, w); break;
  }
  w.finish();
}

void decode_accumulate(std::span<const uint8_t> payload, float* out, size_t n, float alpha) {
  if (!std::isfinite(alpha)) throw std::invalid_argument("decode_accumulate: alpha is not finite");
  ByteReader r(payload);
  const Header h = read_header(r, n);
  switch (h.codec) {
    case CodecId::kFp32: return decode_cast<math::Fp32Cast>(h.codec, parse_float(h.codec, r, n), out, n, alpha);
    case CodecId::kFp16: return decode_cast<math::Fp16Cast>(h.codec, parse_float(h.codec, r, n), out, n, alpha);
    case CodecId::kBf16: return decode_cast<math::Bf16Cast>(h.codec, parse_float(h.codec, r, n), out, n, alpha);
    case CodecId::kTopk: {
      const SparseBody body = parse_topk(r, n);
      return scatter(body.idx, body.vals, 1.0f, alpha, out);
    }
    case CodecId::kRandk: {
      const SparseBody body = parse_randk(r, n);
      const std::vector<uint64_t> idx = select_indices(n, RandkPick{math::stream_key(body.seed, math::kStreamRandk), body.threshold});
      if (idx.size() != body.vals.size() / 4) {
        throw DecodeError("randk payload has " + std::to_string(body.vals.size() / 4) + " values, its seed selects " +
                          std::to_string(idx.size()));
      }
      return scatter(idx, body.vals, body.scale, alpha, out);
    }
    case CodecId::kPowerSgd: {  // host decode onto a host copy
      std::vector<float> h_out(n);
      check(cudaMemcpy(h_out.data(), out, 4 * n, cudaMemcpyDeviceToHost), "download");
      compress::decode_accumulate(payload, h_out, alpha);
      check(cudaMemcpy(out, h_out.data(), 4 * n, cudaMemcpyHostToDevice), "upload");
      return;
    }
    default: return decode_quant_cuda(h.codec, r, out, n, alpha);
  }
}

}  // namespace murmur::compress::cuda

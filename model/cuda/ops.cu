// Kernels of model/cuda/ops.h. Reductions over a row use one warp (LayerNorm,
// softmax) or one block (cross-entropy); reductions over rows (parameter
// gradients) use fixed row chunks and a second pass, so no atomics and the same
// bits on every run.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "model/cuda/ops.h"

namespace murmur::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;
// Cross-entropy: one block per row of Vp logits. Its kernels declare it in
// __launch_bounds__, so the compiler keeps their registers within what 1024 threads
// may use (a launch would otherwise fail with too many resources requested).
constexpr int kRowThreads = 1024;
static_assert(kRowThreads % 32 == 0 && kRowThreads <= 32 * 32,
              "block_reduce holds one value per warp, 32 at most");

unsigned grid_for(size_t n, int threads = kThreads) {
  return static_cast<unsigned>(std::clamp<size_t>((n + threads - 1) / threads, 1, size_t{1} << 16));
}
unsigned warp_grid(size_t rows) {
  return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

__device__ inline size_t global_id() { return size_t{blockIdx.x} * blockDim.x + threadIdx.x; }
__device__ inline size_t grid_size() { return size_t{gridDim.x} * blockDim.x; }

__device__ inline float to_f(float x) { return x; }
__device__ inline float to_f(bf16 x) { return __bfloat162float(x); }
template <class Act>
__device__ inline Act from_f(float x);
template <>
__device__ inline float from_f<float>(float x) {
  return x;
}
template <>
__device__ inline bf16 from_f<bf16>(float x) {
  return __float2bfloat16(x);
}

template <class Act>
constexpr cudaDataType_t data_type() {
  return std::is_same_v<Act, float> ? CUDA_R_32F : CUDA_R_16BF;
}

struct Sum {
  __device__ float operator()(float a, float b) const { return a + b; }
  static constexpr float identity = 0.0f;
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
  static constexpr float identity = -FLT_MAX;
};

template <class Op>
__device__ inline float warp_reduce(float v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Every thread of the block gets the result; blockDim.x is a multiple of 32.
template <class Op>
__device__ float block_reduce(float v, Op op) {
  __shared__ float shared[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_reduce(v, op);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x / 32) ? shared[lane] : Op::identity;
  v = warp_reduce(v, op);
  __syncthreads();  // shared is reused by the next call
  return v;
}

void launched(const char* kernel) { check_launch(kernel); }

// ---- embedding ----------------------------------------------------------------------

template <class Act>
__global__ void encoder_forward_kernel(Act* out, const int32_t* tokens, const float* wte, const float* wpe,
                                       int T, int C, size_t n) {
  for (size_t i = global_id(); i < n; i += grid_size()) {
    const size_t bt = i / C, c = i % C;
    out[i] = from_f<Act>(wte[static_cast<size_t>(tokens[bt]) * C + c] + wpe[(bt % T) * C + c]);
  }
}

template <class Act>
__global__ void wpe_backward_kernel(float* dwpe, const Act* dout, int B, int T, int C) {
  const size_t n = static_cast<size_t>(T) * C;
  for (size_t i = global_id(); i < n; i += grid_size()) {
    float s = 0.0f;
    for (int b = 0; b < B; ++b) s += to_f(dout[static_cast<size_t>(b) * n + i]);
    dwpe[i] += s;
  }
}

// One block per distinct token; its positions are summed in ascending order.
template <class Act>
__global__ void wte_backward_kernel(float* dwte, const Act* dout, const int32_t* groups, int count, int C) {
  const int32_t* tokens = groups;
  const int32_t* starts = groups + count;
  const int32_t* positions = starts + count + 1;
  const int g = blockIdx.x;
  float* row = dwte + static_cast<size_t>(tokens[g]) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float s = 0.0f;
    for (int p = starts[g]; p < starts[g + 1]; ++p)
      s += to_f(dout[static_cast<size_t>(positions[p]) * C + c]);
    row[c] += s;
  }
}

// ---- column reductions (parameter gradients over rows) --------------------------------

constexpr int kColTile = 32, kColRows = 8, kRowsPerChunk = 256;
size_t column_chunks(size_t N) { return (N + kRowsPerChunk - 1) / kRowsPerChunk; }

template <class Act>
struct BiasGrad {
  const Act* dout;
  __device__ void operator()(size_t n, int c, int C, float& a, float&) const { a += to_f(dout[n * C + c]); }
};

template <class Act>
struct LayerNormParamGrad {
  const Act *dout, *inp;
  const float *mean, *rstd;
  __device__ void operator()(size_t n, int c, int C, float& dw, float& db) const {
    const float d = to_f(dout[n * C + c]);
    dw += (to_f(inp[n * C + c]) - mean[n]) * rstd[n] * d;
    db += d;
  }
};

// part{0,1}[chunk, c] = Σ over the chunk's rows, in a fixed order.
template <class F>
__global__ void column_partials_kernel(F f, size_t N, int C, float* part0, float* part1) {
  __shared__ float s0[kColRows][kColTile], s1[kColRows][kColTile];
  const int c = blockIdx.x * kColTile + threadIdx.x;
  const size_t chunk = blockIdx.y, n0 = chunk * kRowsPerChunk, n1 = min(N, n0 + kRowsPerChunk);
  float a = 0.0f, b = 0.0f;
  if (c < C)
    for (size_t n = n0 + threadIdx.y; n < n1; n += kColRows) f(n, c, C, a, b);
  s0[threadIdx.y][threadIdx.x] = a;
  s1[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  for (int r = 1; r < kColRows; ++r) {
    a += s0[r][threadIdx.x];
    b += s1[r][threadIdx.x];
  }
  part0[chunk * C + c] = a;
  if (part1) part1[chunk * C + c] = b;
}

__global__ void column_finish_kernel(float* out0, float* out1, const float* part0, const float* part1,
                                     size_t chunks, int C) {
  const size_t c = global_id();
  if (c >= static_cast<size_t>(C)) return;
  float a = 0.0f, b = 0.0f;
  for (size_t k = 0; k < chunks; ++k) {
    a += part0[k * C + c];
    if (out1) b += part1[k * C + c];
  }
  out0[c] += a;
  if (out1) out1[c] += b;
}

// out0 += Σ_n f0(n, c), out1 += Σ_n f1(n, c) (out1 may be null).
template <class F>
void column_sums(F f, float* out0, float* out1, size_t N, int C, float* scratch) {
  const size_t chunks = column_chunks(N);
  if (chunks > 65535)
    throw std::invalid_argument("column reduction over " + std::to_string(N) + " rows: too many");
  float* part1 = out1 ? scratch + chunks * C : nullptr;
  const dim3 grid((C + kColTile - 1) / kColTile, static_cast<unsigned>(chunks)), block(kColTile, kColRows);
  column_partials_kernel<<<grid, block>>>(f, N, C, scratch, part1);
  launched("column_partials_kernel");
  column_finish_kernel<<<grid_for(C), kThreads>>>(out0, out1, scratch, part1, chunks, C);
  launched("column_finish_kernel");
}

// ---- LayerNorm ------------------------------------------------------------------------

constexpr float kLnEps = 1e-5f;

template <class Act>
__global__ void layernorm_forward_kernel(Act* out, float* mean, float* rstd, const Act* inp, const float* w,
                                         const float* b, size_t N, int C) {
  const size_t row = size_t{blockIdx.x} * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;
  const Act* x = inp + row * C;
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) s += to_f(x[c]);
  const float m = warp_reduce(s, Sum{}) / C;
  float v = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = to_f(x[c]) - m;
    v += d * d;
  }
  const float r = 1.0f / sqrtf(warp_reduce(v, Sum{}) / C + kLnEps);
  Act* o = out + row * C;
  for (int c = lane; c < C; c += 32) o[c] = from_f<Act>((to_f(x[c]) - m) * r * w[c] + b[c]);
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

template <class Act>
__global__ void layernorm_backward_kernel(Act* dinp, const Act* dout, const Act* inp, const float* w,
                                          const float* mean, const float* rstd, size_t N, int C) {
  const size_t row = size_t{blockIdx.x} * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;
  const Act* d = dout + row * C;
  const Act* x = inp + row * C;
  const float m = mean[row], s = rstd[row];
  float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float dnorm = w[c] * to_f(d[c]);
    dnorm_mean += dnorm;
    dnorm_norm_mean += dnorm * (to_f(x[c]) - m) * s;
  }
  dnorm_mean = warp_reduce(dnorm_mean, Sum{}) / C;
  dnorm_norm_mean = warp_reduce(dnorm_norm_mean, Sum{}) / C;
  Act* di = dinp + row * C;
  for (int c = lane; c < C; c += 32) {
    const float norm = (to_f(x[c]) - m) * s;
    di[c] = from_f<Act>(to_f(di[c]) + (w[c] * to_f(d[c]) - dnorm_mean - norm * dnorm_norm_mean) * s);
  }
}

// ---- attention softmax ----------------------------------------------------------------

// rows = NH * T rows of length T; row r is query t = r % T, which sees keys 0..t.
template <class Act>
__global__ void softmax_forward_kernel(Act* att, const float* scores, size_t rows, int T) {
  const size_t r = size_t{blockIdx.x} * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const int t = static_cast<int>(r % T);
  const float* s = scores + r * T;
  float mx = -FLT_MAX;
  for (int u = lane; u <= t; u += 32) mx = fmaxf(mx, s[u]);
  mx = warp_reduce(mx, Max{});
  float sum = 0.0f;
  for (int u = lane; u <= t; u += 32) sum += expf(s[u] - mx);
  const float inv = 1.0f / warp_reduce(sum, Sum{});
  Act* a = att + r * T;
  for (int u = lane; u < T; u += 32) a[u] = from_f<Act>(u <= t ? expf(s[u] - mx) * inv : 0.0f);
}

template <class Act>
__global__ void softmax_backward_kernel(Act* dscores, const Act* att, const float* datt, size_t rows, int T,
                                        float scale) {
  const size_t r = size_t{blockIdx.x} * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const int t = static_cast<int>(r % T);
  const Act* a = att + r * T;
  const float* d = datt + r * T;
  float dot = 0.0f;
  for (int u = lane; u <= t; u += 32) dot += to_f(a[u]) * d[u];
  dot = warp_reduce(dot, Sum{});
  Act* ds = dscores + r * T;
  for (int u = lane; u < T; u += 32) ds[u] = from_f<Act>(u <= t ? to_f(a[u]) * (d[u] - dot) * scale : 0.0f);
}

// ---- GELU -----------------------------------------------------------------------------

constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)

template <class Act>
__global__ void gelu_forward_kernel(Act* out, const Act* inp, size_t n) {
  for (size_t i = global_id(); i < n; i += grid_size()) {
    const float x = to_f(inp[i]);
    out[i] = from_f<Act>(0.5f * x * (1.0f + tanhf(kGeluScale * (x + 0.044715f * x * x * x))));
  }
}

template <class Act>
__global__ void gelu_backward_kernel(Act* dinp, const Act* inp, const Act* dout, size_t n) {
  for (size_t i = global_id(); i < n; i += grid_size()) {
    const float x = to_f(inp[i]);
    const float th = tanhf(kGeluScale * (x + 0.044715f * x * x * x));
    const float sech2 = 1.0f - th * th;
    const float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kGeluScale * (1.0f + 3.0f * 0.044715f * x * x);
    dinp[i] = from_f<Act>(grad * to_f(dout[i]));
  }
}

// ---- cross-entropy --------------------------------------------------------------------

template <class Act>
__global__ void __launch_bounds__(kRowThreads)
    crossentropy_forward_kernel(float* losses, float* lse, const Act* logits, const int32_t* targets, int V,
                                int Vp) {
  const size_t n = blockIdx.x;
  const Act* row = logits + n * Vp;
  float mx = -FLT_MAX;
  for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, to_f(row[v]));
  mx = block_reduce(mx, Max{});
  float sum = 0.0f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) sum += expf(to_f(row[v]) - mx);
  sum = block_reduce(sum, Sum{});
  if (threadIdx.x == 0) {
    const float l = mx + logf(sum);
    lse[n] = l;
    losses[n] = l - to_f(row[targets[n]]);
  }
}

template <class Act>
__global__ void __launch_bounds__(kRowThreads)
    crossentropy_backward_kernel(Act* logits, const float* lse, const int32_t* targets, int V, int Vp,
                                 float dloss) {
  const size_t n = blockIdx.x;
  Act* row = logits + n * Vp;
  const float l = lse[n];
  const int target = targets[n];
  for (int v = threadIdx.x; v < Vp; v += blockDim.x) {
    float d = v < V ? expf(to_f(row[v]) - l) * dloss : 0.0f;
    if (v == target) d -= dloss;
    row[v] = from_f<Act>(d);
  }
}

// ---- optimizer and reductions ---------------------------------------------------------

// blockIdx.y picks the tensor; the blocks along x stride over its elements.
__global__ void adamw_kernel(float* params, float* m, float* v, const float* grads, bf16* params_bf16,
                             const AdamWTensor* table, AdamWArgs a) {
  const AdamWTensor t = table[blockIdx.y];
  const float decay = t.decay ? a.decay_factor : 1.0f;
  for (size_t i = global_id(); i < t.numel; i += grid_size()) {
    const size_t j = t.offset + i;
    const float g = grads[j] * a.grad_scale;
    const float mj = a.beta1 * m[j] + (1.0f - a.beta1) * g;
    const float vj = a.beta2 * v[j] + (1.0f - a.beta2) * g * g;
    const float denom = sqrtf(vj) / a.bc2_sqrt + a.eps;
    const float p = params[j] * decay - a.step_size * mj / denom;
    m[j] = mj;
    v[j] = vj;
    params[j] = p;
    if (params_bf16) params_bf16[j] = __float2bfloat16(p);
  }
}

__global__ void sum_squares_kernel(const float* x, size_t n, double* partials) {
  __shared__ double shared[kThreads];
  double s = 0.0;
  for (size_t i = global_id(); i < n; i += grid_size()) s += static_cast<double>(x[i]) * x[i];
  shared[threadIdx.x] = s;
  __syncthreads();
  for (int o = kThreads / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) shared[threadIdx.x] += shared[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = shared[0];
}

template <class Dst, class Src>
__global__ void convert_kernel(Dst* out, const Src* in, size_t n) {
  for (size_t i = global_id(); i < n; i += grid_size()) out[i] = from_f<Dst>(to_f(in[i]));
}

}  // namespace

TokenGroups group_tokens(const int32_t* tokens, size_t n, int vocab) {
  // Counting sort by token: stable, so each group lists its positions in ascending order.
  std::vector<int32_t> count(static_cast<size_t>(vocab) + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab)
      throw std::invalid_argument("group_tokens: token id out of range");
    ++count[tokens[i] + 1];
  }
  TokenGroups g;
  for (int t = 0; t < vocab; ++t) g.count += count[t + 1] > 0;
  g.packed.resize(static_cast<size_t>(g.count) * 2 + 1 + n);
  int32_t* uniq = g.packed.data();
  int32_t* starts = uniq + g.count;
  int32_t* positions = starts + g.count + 1;
  for (int t = 0; t < vocab; ++t) count[t + 1] += count[t];  // count[t] = first slot of token t
  int k = 0;
  for (int t = 0; t < vocab; ++t) {
    if (count[t + 1] == count[t]) continue;
    uniq[k] = t;
    starts[k++] = count[t];
  }
  starts[g.count] = static_cast<int32_t>(n);
  for (size_t i = 0; i < n; ++i) positions[count[tokens[i]]++] = static_cast<int32_t>(i);
  return g;
}

template <class Act>
void encoder_forward(Act* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                     int C) {
  const size_t n = static_cast<size_t>(B) * T * C;
  encoder_forward_kernel<<<grid_for(n), kThreads>>>(out, tokens, wte, wpe, T, C, n);
  launched("encoder_forward_kernel");
}

template <class Act>
void encoder_backward(float* dwte, float* dwpe, const Act* dout, const int32_t* d_groups, int groups, int B,
                      int T, int C) {
  wpe_backward_kernel<<<grid_for(static_cast<size_t>(T) * C), kThreads>>>(dwpe, dout, B, T, C);
  launched("wpe_backward_kernel");
  if (groups == 0) return;
  wte_backward_kernel<<<groups, kThreads>>>(dwte, dout, d_groups, groups, C);
  launched("wte_backward_kernel");
}

size_t column_scratch_floats(size_t N, int C) { return 2 * column_chunks(N) * static_cast<size_t>(C); }

template <class Act>
void layernorm_forward(Act* out, float* mean, float* rstd, const Act* inp, const float* w, const float* b,
                       size_t N, int C) {
  layernorm_forward_kernel<<<warp_grid(N), kThreads>>>(out, mean, rstd, inp, w, b, N, C);
  launched("layernorm_forward_kernel");
}

template <class Act>
void layernorm_backward(Act* dinp, float* dw, float* db, const Act* dout, const Act* inp, const float* w,
                        const float* mean, const float* rstd, size_t N, int C, float* scratch) {
  layernorm_backward_kernel<<<warp_grid(N), kThreads>>>(dinp, dout, inp, w, mean, rstd, N, C);
  launched("layernorm_backward_kernel");
  column_sums(LayerNormParamGrad<Act>{dout, inp, mean, rstd}, dw, db, N, C, scratch);
}

namespace {

// Row-major D (M, N) = A (M, K) @ op(B), all of the activation type.
template <class Act>
GemmSpec activation_gemm(bool trans_b, int64_t M, int64_t N, int64_t K, const Act* A, int64_t lda,
                         const Act* B, int64_t ldb, Act* D, int64_t ldd) {
  GemmSpec s;
  s.trans_b = trans_b;
  s.M = M, s.N = N, s.K = K;
  s.A = A, s.lda = lda;
  s.B = B, s.ldb = ldb;
  s.D = D, s.ldd = ldd;
  s.ab_type = s.d_type = data_type<Act>();
  return s;
}

// dw (M, N) += A^T @ B for A (K, M), B (K, N): accumulated in the fp32 gradient buffer.
template <class Act>
void accumulate_weight_grad(Gemm& gemm, float* dw, const Act* A, const Act* B, int64_t M, int64_t N,
                            int64_t K) {
  GemmSpec g;
  g.trans_a = true;
  g.M = M, g.N = N, g.K = K;
  g.A = A, g.lda = M;
  g.B = B, g.ldb = N;
  g.D = dw, g.ldd = N;
  g.beta = 1.0f;
  g.ab_type = data_type<Act>();
  g.d_type = CUDA_R_32F;
  gemm.run(g);
}

}  // namespace

template <class Act>
void matmul_forward(Gemm& gemm, Act* out, const Act* inp, const Act* w, const Act* bias, const Act* residual,
                    size_t N, int C, int OC) {
  GemmSpec s = activation_gemm(false, static_cast<int64_t>(N), OC, C, inp, C, w, OC, out, OC);
  s.C = residual;
  s.beta = residual ? 1.0f : 0.0f;
  s.bias = bias;
  gemm.run(s);
}

template <class Act>
void matmul_backward(Gemm& gemm, Act* dinp, float* dw, float* dbias, const Act* dout, const Act* inp,
                     const Act* w, size_t N, int C, int OC, float* scratch) {
  const auto n = static_cast<int64_t>(N);
  gemm.run(activation_gemm(true, n, C, OC, dout, OC, w, OC, dinp, C));  // dinp = dout @ w^T
  accumulate_weight_grad(gemm, dw, inp, dout, C, OC, n);                // dw += inp^T @ dout
  if (dbias) column_sums(BiasGrad<Act>{dout}, dbias, nullptr, N, OC, scratch);
}

template <class Act>
void lm_head_forward(Gemm& gemm, Act* logits, const Act* inp, const Act* wte, size_t N, int C, int Vp) {
  gemm.run(activation_gemm(true, static_cast<int64_t>(N), Vp, C, inp, C, wte, C, logits, Vp));
}

template <class Act>
void lm_head_backward(Gemm& gemm, Act* dinp, float* dwte, const Act* dlogits, const Act* inp, const Act* wte,
                      size_t N, int C, int Vp) {
  const auto n = static_cast<int64_t>(N);
  gemm.run(activation_gemm(false, n, C, Vp, dlogits, Vp, wte, C, dinp, C));  // dinp = dlogits @ wte
  accumulate_weight_grad(gemm, dwte, dlogits, inp, Vp, C, n);                // dwte += dlogits^T @ inp
}

namespace {

// One GEMM over the NH heads of a sequence: head h's (T, hs) slice of a row-major
// (T, ld) matrix starts hs elements after head h-1's.
GemmSpec head_gemm(int NH, int64_t M, int64_t N, int64_t K, cudaDataType_t ab, cudaDataType_t dt) {
  GemmSpec s;
  s.M = M, s.N = N, s.K = K;
  s.ab_type = ab, s.d_type = dt;
  s.batch = NH;
  return s;
}

}  // namespace

template <class Act>
void attention_forward(Gemm& gemm, Act* out, Act* att, const Act* qkv, float* scores, int B, int T, int C,
                       int NH) {
  const int hs = C / NH;
  const int64_t C3 = 3 * int64_t{C}, TT = int64_t{T} * T;
  const cudaDataType_t act = data_type<Act>();
  for (int b = 0; b < B; ++b) {
    const Act* q = qkv + b * T * C3;
    Act* att_b = att + b * NH * TT;
    GemmSpec s = head_gemm(NH, T, T, hs, act, CUDA_R_32F);  // scores = scale * q @ k^T
    s.trans_b = true;
    s.A = q, s.lda = C3, s.stride_a = hs;
    s.B = q + C, s.ldb = C3, s.stride_b = hs;
    s.D = scores, s.ldd = T, s.stride_d = TT;
    s.alpha = 1.0f / std::sqrt(static_cast<float>(hs));
    gemm.run(s);
    const size_t rows = static_cast<size_t>(NH) * T;
    softmax_forward_kernel<<<warp_grid(rows), kThreads>>>(att_b, scores, rows, T);
    launched("softmax_forward_kernel");
    GemmSpec o = head_gemm(NH, T, hs, T, act, act);  // out = att @ v
    o.A = att_b, o.lda = T, o.stride_a = TT;
    o.B = q + 2 * C, o.ldb = C3, o.stride_b = hs;
    o.D = out + static_cast<int64_t>(b) * T * C, o.ldd = C, o.stride_d = hs;
    gemm.run(o);
  }
}

template <class Act>
void attention_backward(Gemm& gemm, Act* dqkv, const Act* dout, const Act* qkv, const Act* att, float* datt,
                        Act* dscores, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const int64_t C3 = 3 * int64_t{C}, TT = int64_t{T} * T;
  const cudaDataType_t act = data_type<Act>();
  for (int b = 0; b < B; ++b) {
    const Act* q = qkv + b * T * C3;
    Act* dq = dqkv + b * T * C3;
    const Act* att_b = att + b * NH * TT;
    const Act* d = dout + static_cast<int64_t>(b) * T * C;
    GemmSpec s = head_gemm(NH, T, T, hs, act, CUDA_R_32F);  // datt = d @ v^T
    s.trans_b = true;
    s.A = d, s.lda = C, s.stride_a = hs;
    s.B = q + 2 * C, s.ldb = C3, s.stride_b = hs;
    s.D = datt, s.ldd = T, s.stride_d = TT;
    gemm.run(s);
    GemmSpec dv = head_gemm(NH, T, hs, T, act, act);  // dv = att^T @ d
    dv.trans_a = true;
    dv.A = att_b, dv.lda = T, dv.stride_a = TT;
    dv.B = d, dv.ldb = C, dv.stride_b = hs;
    dv.D = dq + 2 * C, dv.ldd = C3, dv.stride_d = hs;
    gemm.run(dv);
    const size_t rows = static_cast<size_t>(NH) * T;
    softmax_backward_kernel<<<warp_grid(rows), kThreads>>>(dscores, att_b, datt, rows, T,
                                                           1.0f / std::sqrt(static_cast<float>(hs)));
    launched("softmax_backward_kernel");
    GemmSpec gq = head_gemm(NH, T, hs, T, act, act);  // dq = dscores @ k
    gq.A = dscores, gq.lda = T, gq.stride_a = TT;
    gq.B = q + C, gq.ldb = C3, gq.stride_b = hs;
    gq.D = dq, gq.ldd = C3, gq.stride_d = hs;
    gemm.run(gq);
    GemmSpec gk = gq;  // dk = dscores^T @ q
    gk.trans_a = true;
    gk.B = q;
    gk.D = dq + C;
    gemm.run(gk);
  }
}

template <class Act>
void gelu_forward(Act* out, const Act* inp, size_t n) {
  gelu_forward_kernel<<<grid_for(n), kThreads>>>(out, inp, n);
  launched("gelu_forward_kernel");
}

template <class Act>
void gelu_backward(Act* dinp, const Act* inp, const Act* dout, size_t n) {
  gelu_backward_kernel<<<grid_for(n), kThreads>>>(dinp, inp, dout, n);
  launched("gelu_backward_kernel");
}

template <class Act>
void crossentropy_forward(float* losses, float* lse, const Act* logits, const int32_t* targets, size_t N,
                          int V, int Vp) {
  crossentropy_forward_kernel<<<static_cast<unsigned>(N), kRowThreads>>>(losses, lse, logits, targets, V, Vp);
  launched("crossentropy_forward_kernel");
}

template <class Act>
void crossentropy_backward(Act* logits, const float* lse, const int32_t* targets, size_t N, int V, int Vp,
                           float dloss) {
  crossentropy_backward_kernel<<<static_cast<unsigned>(N), kRowThreads>>>(logits, lse, targets, V, Vp, dloss);
  launched("crossentropy_backward_kernel");
}

void adamw_update(float* params, float* m, float* v, const float* grads, bf16* params_bf16,
                  const AdamWTensor* table, int tensors, size_t max_numel, const AdamWArgs& args) {
  if (tensors < 1 || tensors > 65535) throw std::invalid_argument("adamw_update: 1..65535 tensors");
  const dim3 grid(std::min(grid_for(max_numel), 1024u), static_cast<unsigned>(tensors));
  adamw_kernel<<<grid, kThreads>>>(params, m, v, grads, params_bf16, table, args);
  launched("adamw_kernel");
}

double sum_squares(const float* x, size_t n, double* partials) {
  sum_squares_kernel<<<kSumSquaresPartials, kThreads>>>(x, n, partials);
  launched("sum_squares_kernel");
  std::vector<double> host(kSumSquaresPartials);
  check(cudaMemcpy(host.data(), partials, host.size() * sizeof(double), cudaMemcpyDeviceToHost),
        "sum_squares (cudaMemcpy)");
  double total = 0.0;
  for (double p : host) total += p;
  return total;
}

template <class Dst, class Src>
void convert(Dst* out, const Src* in, size_t n) {
  convert_kernel<<<grid_for(n), kThreads>>>(out, in, n);
  launched("convert_kernel");
}

template void convert<bf16, float>(bf16*, const float*, size_t);
template void convert<float, bf16>(float*, const bf16*, size_t);

#define MURMUR_INSTANTIATE_OPS(Act)                                                                          \
  template void encoder_forward<Act>(Act*, const int32_t*, const float*, const float*, int, int, int);       \
  template void encoder_backward<Act>(float*, float*, const Act*, const int32_t*, int, int, int, int);       \
  template void layernorm_forward<Act>(Act*, float*, float*, const Act*, const float*, const float*, size_t, \
                                       int);                                                                 \
  template void layernorm_backward<Act>(Act*, float*, float*, const Act*, const Act*, const float*,          \
                                        const float*, const float*, size_t, int, float*);                    \
  template void matmul_forward<Act>(Gemm&, Act*, const Act*, const Act*, const Act*, const Act*, size_t,     \
                                    int, int);                                                               \
  template void matmul_backward<Act>(Gemm&, Act*, float*, float*, const Act*, const Act*, const Act*,        \
                                     size_t, int, int, float*);                                              \
  template void lm_head_forward<Act>(Gemm&, Act*, const Act*, const Act*, size_t, int, int);                 \
  template void lm_head_backward<Act>(Gemm&, Act*, float*, const Act*, const Act*, const Act*, size_t, int,  \
                                      int);                                                                  \
  template void attention_forward<Act>(Gemm&, Act*, Act*, const Act*, float*, int, int, int, int);           \
  template void attention_backward<Act>(Gemm&, Act*, const Act*, const Act*, const Act*, float*, Act*, int,  \
                                        int, int, int);                                                      \
  template void gelu_forward<Act>(Act*, const Act*, size_t);                                                 \
  template void gelu_backward<Act>(Act*, const Act*, const Act*, size_t);                                    \
  template void crossentropy_forward<Act>(float*, float*, const Act*, const int32_t*, size_t, int, int);     \
  template void crossentropy_backward<Act>(Act*, const float*, const int32_t*, size_t, int, int, float);

MURMUR_INSTANTIATE_OPS(float)
MURMUR_INSTANTIATE_OPS(bf16)

}  // namespace murmur::cuda

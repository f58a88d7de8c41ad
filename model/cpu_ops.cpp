#include "model/cpu_ops.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/fast_math.h"

namespace murmur::cpu {

namespace {

// Splits [0, n) evenly among the threads of the current parallel region.
inline void thread_range(size_t n, size_t& lo, size_t& hi) {
  const size_t nt = static_cast<size_t>(omp_get_num_threads());
  const size_t tid = static_cast<size_t>(omp_get_thread_num());
  lo = n * tid / nt;
  hi = n * (tid + 1) / nt;
}

// sum[c] += Σ_n x[n, c] for x (N, C). Threads own disjoint column ranges and
// walk the rows in order, so each sum has one fixed order for any thread count.
void column_sums(float* sum, const float* x, size_t N, int C) {
#pragma omp parallel
  {
    size_t c0, c1;
    thread_range(static_cast<size_t>(C), c0, c1);
    for (size_t n = 0; n < N; ++n) {
      const float* row = x + n * C;
#pragma omp simd
      for (size_t c = c0; c < c1; ++c) sum[c] += row[c];
    }
  }
}

constexpr float kLnEps = 1e-5f;

}  // namespace

void encoder_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                     int C) {
#pragma omp parallel for schedule(static)
  for (int bt = 0; bt < B * T; ++bt) {
    const float* e = wte + static_cast<size_t>(tokens[bt]) * C;
    const float* p = wpe + static_cast<size_t>(bt % T) * C;
    float* o = out + static_cast<size_t>(bt) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] = e[c] + p[c];
  }
}

void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                      int C) {
  // Tokens repeat, so rows of dwte collide: parallelise over channels instead.
#pragma omp parallel
  {
    size_t c0, c1;
    thread_range(static_cast<size_t>(C), c0, c1);
    for (int bt = 0; bt < B * T; ++bt) {
      const float* d = dout + static_cast<size_t>(bt) * C;
      float* e = dwte + static_cast<size_t>(tokens[bt]) * C;
      float* p = dwpe + static_cast<size_t>(bt % T) * C;
      for (size_t c = c0; c < c1; ++c) {
        e[c] += d[c];
        p[c] += d[c];
      }
    }
  }
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                       size_t N, int C) {
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; ++n) {
    const float* x = inp + n * C;
    float m = 0.0f;
    for (int c = 0; c < C; ++c) m += x[c];
    m /= C;
    float v = 0.0f;
    for (int c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
    v /= C;
    const float s = 1.0f / std::sqrt(v + kLnEps);
    float* o = out + n * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] = (x[c] - m) * s * w[c] + b[c];
    mean[n] = m;
    rstd[n] = s;
  }
}

void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, size_t N, int C) {
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; ++n) {
    const float* d = dout + n * C;
    const float* x = inp + n * C;
    const float m = mean[n], s = rstd[n];
    float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
    for (int c = 0; c < C; ++c) {
      const float dnorm = w[c] * d[c];
      dnorm_mean += dnorm;
      dnorm_norm_mean += dnorm * (x[c] - m) * s;
    }
    dnorm_mean /= C;
    dnorm_norm_mean /= C;
    float* di = dinp + n * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      const float norm = (x[c] - m) * s;
      di[c] += (w[c] * d[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
    }
  }
#pragma omp parallel
  {
    size_t c0, c1;
    thread_range(static_cast<size_t>(C), c0, c1);
    for (size_t n = 0; n < N; ++n) {
      const float* d = dout + n * C;
      const float* x = inp + n * C;
      const float m = mean[n], s = rstd[n];
#pragma omp simd
      for (size_t c = c0; c < c1; ++c) {
        dw[c] += (x[c] - m) * s * d[c];
        db[c] += d[c];
      }
    }
  }
}

void matmul_forward(float* out, const float* inp, const float* w, const float* bias, size_t N, int C,
                    int OC) {
  float beta = 0.0f;
  if (bias) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; ++n) std::copy(bias, bias + OC, out + n * OC);
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(N), OC, C, 1.0f, inp, C, w, OC,
              beta, out, OC);
}

void matmul_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                     const float* w, size_t N, int C, int OC) {
  const int n = static_cast<int>(N);
  // dinp (N, C) += dout (N, OC) @ w^T;  dw (C, OC) += inp^T @ dout.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, C, OC, 1.0f, dout, OC, w, OC, 1.0f, dinp, C);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, n, 1.0f, inp, C, dout, OC, 1.0f, dw, OC);
  if (dbias) column_sums(dbias, dout, N, OC);
}

void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const size_t C3 = 3 * static_cast<size_t>(C);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < NH; ++h) {
      const float* q = qkv + b * T * C3 + h * hs;
      const float* k = q + C;
      const float* v = q + 2 * C;
      float* a = att + (static_cast<size_t>(b) * NH + h) * T * T;
      // Scores for the full (T, T) square, then the causal softmax on the lower triangle.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, 3 * C, k, 3 * C, 0.0f, a, T);
      for (int t = 0; t < T; ++t) {
        float* row = a + static_cast<size_t>(t) * T;
        float mx = row[0];
        for (int u = 1; u <= t; ++u) mx = std::max(mx, row[u]);
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int u = 0; u <= t; ++u) {
          row[u] = fast_exp(row[u] - mx);
          sum += row[u];
        }
        const float inv = 1.0f / sum;
        for (int u = 0; u <= t; ++u) row[u] *= inv;
        std::fill(row + t + 1, row + T, 0.0f);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, v, 3 * C, 0.0f,
                  out + static_cast<size_t>(b) * T * C + h * hs, C);
    }
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T,
                        int C, int NH, float* scratch) {
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const size_t C3 = 3 * static_cast<size_t>(C);
#pragma omp parallel
  {
    float* ds = scratch + static_cast<size_t>(omp_get_thread_num()) * T * T;  // this thread's (T, T)
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; ++b) {
      for (int h = 0; h < NH; ++h) {
        const size_t off = b * T * C3 + h * hs;
        const float *q = qkv + off, *k = q + C, *v = q + 2 * C;
        float *dq = dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
        const float* a = att + (static_cast<size_t>(b) * NH + h) * T * T;
        const float* d = dout + static_cast<size_t>(b) * T * C + h * hs;
        // datt = d @ v^T;  dv += att^T @ d.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, d, C, v, 3 * C, 0.0f, ds, T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, d, C, 1.0f, dv, 3 * C);
        // Softmax backward on the causal rows, with the score scale folded in.
        for (int t = 0; t < T; ++t) {
          const float* ar = a + static_cast<size_t>(t) * T;
          float* dr = ds + static_cast<size_t>(t) * T;
          float dot = 0.0f;
          for (int u = 0; u <= t; ++u) dot += ar[u] * dr[u];
          for (int u = 0; u <= t; ++u) dr[u] = ar[u] * (dr[u] - dot) * scale;
          std::fill(dr + t + 1, dr + T, 0.0f);
        }
        // dq += dscore @ k;  dk += dscore^T @ q.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, ds, T, k, 3 * C, 1.0f, dq,
                    3 * C);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, ds, T, q, 3 * C, 1.0f, dk,
                    3 * C);
      }
    }
  }
}

namespace {
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)
}

void gelu_forward(float* out, const float* inp, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.0f + fast_tanh(kGeluScale * (x + 0.044715f * x * x * x)));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float u = kGeluScale * (x + 0.044715f * x * x * x);
    const float th = fast_tanh(u);
    const float sech2 = 1.0f - th * th;
    const float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kGeluScale * (1.0f + 3.0f * 0.044715f * x * x);
    dinp[i] += grad * dout[i];
  }
}

void residual_forward(float* out, const float* a, const float* b, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void lm_head_forward(float* logits, const float* inp, const float* wte, size_t N, int C, int Vp) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(N), Vp, C, 1.0f, inp, C, wte, C, 0.0f,
              logits, Vp);
}

void lm_head_backward(float* dinp, float* dwte, const float* dlogits, const float* inp, const float* wte,
                      size_t N, int C, int Vp) {
  const int n = static_cast<int>(N);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, C, Vp, 1.0f, dlogits, Vp, wte, C, 1.0f, dinp, C);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Vp, C, n, 1.0f, dlogits, Vp, inp, C, 1.0f, dwte, C);
}

double crossentropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, size_t N,
                            int V, int Vp) {
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; ++n) {
    const float* row = logits + n * Vp;
    float mx = row[0];
    for (int v = 1; v < V; ++v) mx = std::max(mx, row[v]);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; ++v) sum += fast_exp(row[v] - mx);
    lse[n] = mx + std::log(sum);
    losses[n] = lse[n] - row[targets[n]];
  }
  double total = 0.0;
  for (size_t n = 0; n < N; ++n) total += losses[n];
  return total / static_cast<double>(N);
}

void crossentropy_backward_inplace(float* logits, const float* lse, const int32_t* targets, size_t N, int V,
                                   int Vp, float dloss) {
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; ++n) {
    float* row = logits + n * Vp;
    const float l = lse[n];
#pragma omp simd
    for (int v = 0; v < V; ++v) row[v] = fast_exp(row[v] - l) * dloss;
    std::fill(row + V, row + Vp, 0.0f);
    row[targets[n]] -= dloss;
  }
}

double sum_squares(const float* x, size_t n) {
  // Fixed-size chunks summed in parallel, then combined in chunk order.
  constexpr size_t kChunk = 1 << 16;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(chunks);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < chunks; ++i) {
    const size_t lo = i * kChunk, hi = std::min(n, lo + kChunk);
    double s = 0.0;
    for (size_t j = lo; j < hi; ++j) s += static_cast<double>(x[j]) * x[j];
    part[i] = s;
  }
  double total = 0.0;
  for (double p : part) total += p;
  return total;
}

}  // namespace murmur::cpu

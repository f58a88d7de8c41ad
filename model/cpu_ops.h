// The fp32 CPU kernels of the GPT-2 forward and backward passes: plain
// functions over flat row-major buffers. This file is the executable spec the
// CUDA backend is tested against. Backward functions ACCUMULATE (+=) into their
// gradient outputs, so callers zero them once per step.
//
// All kernels are deterministic for a fixed thread count: parallel loops use
// static schedules and every reduction has a fixed summation order.
#pragma once

#include <cstddef>
#include <cstdint>

namespace murmur::cpu {

// out (N, C) = wte[tokens] + wpe[t], N = B*T.
void encoder_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                     int C);
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                      int C);

// LayerNorm over the last dimension (eps 1e-5). mean/rstd (N) are saved for backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                       size_t N, int C);
void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, size_t N, int C);

// out (N, OC) = inp (N, C) @ w (C, OC) + bias (OC); w is stored (in, out) as in HF Conv1D.
void matmul_forward(float* out, const float* inp, const float* w, const float* bias, size_t N, int C, int OC);
void matmul_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                     const float* w, size_t N, int C, int OC);

// Causal self-attention. qkv (B, T, 3C) holds q|k|v; att (B, NH, T, T) keeps
// the softmax probabilities for backward; out (B, T, C).
void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH);
// scratch holds omp_get_max_threads() * T * T floats (one score-gradient square per thread).
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T,
                        int C, int NH, float* scratch);

// GELU, tanh approximation (GPT-2's "gelu_new").
void gelu_forward(float* out, const float* inp, size_t n);
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n);

void residual_forward(float* out, const float* a, const float* b, size_t n);

// logits (N, Vp) = inp (N, C) @ wte (Vp, C)^T: the LM head tied to the embedding.
void lm_head_forward(float* logits, const float* inp, const float* wte, size_t N, int C, int Vp);
void lm_head_backward(float* dinp, float* dwte, const float* dlogits, const float* inp, const float* wte,
                      size_t N, int C, int Vp);

// Cross-entropy over the first V of Vp columns. losses (N) = logsumexp - logit[target];
// lse (N) is saved for backward. Returns the mean loss (summed in double, fixed order).
double crossentropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, size_t N,
                            int V, int Vp);
// Overwrites logits (N, Vp) with dlogits = (softmax - onehot) * dloss; padded columns get 0.
void crossentropy_backward_inplace(float* logits, const float* lse, const int32_t* targets, size_t N, int V,
                                   int Vp, float dloss);

// Sum of squares of x[0..n) in double, in a fixed order independent of the thread count.
double sum_squares(const float* x, size_t n);

}  // namespace murmur::cpu

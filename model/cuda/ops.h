// The device kernels of the GPT-2 forward and backward passes: the CUDA twins of
// model/cpu_ops.h, over device pointers, on the legacy default stream. Act is the
// activation type: float (fp32 mode) or bf16 (mixed precision). Whatever Act is,
// parameters, their gradients, LayerNorm statistics and losses are fp32, and all
// arithmetic (reductions, softmax, GEMM accumulation) is fp32.
//
// Unlike the CPU kernels, outputs named dinp/dqkv are OVERWRITTEN (the backend
// never needs to accumulate them) except LayerNorm's dinp, which accumulates into
// the residual-stream gradient. Parameter gradients (dw, db, dwte, ...) accumulate.
// Every reduction has a fixed order (no atomics): results are bit-reproducible on
// a given GPU and toolkit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/cuda/cuda_util.h"
#include "model/cuda/gemm.h"

namespace murmur::cuda {

// The positions of a batch grouped by token id, so the embedding backward can
// sum each token's rows in position order instead of racing with atomics.
// Packed as [distinct tokens (U) | group starts (U+1) | positions (n)].
struct TokenGroups {
  std::vector<int32_t> packed;
  int count = 0;  // U
};
TokenGroups group_tokens(const int32_t* tokens, size_t n, int vocab);  // host; tokens in [0, vocab)

template <class Act>
void encoder_forward(Act* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                     int C);
// d_groups: TokenGroups::packed on the device.
template <class Act>
void encoder_backward(float* dwte, float* dwpe, const Act* dout, const int32_t* d_groups, int groups, int B,
                      int T, int C);

// Scratch floats the column reductions (LayerNorm weights, biases) need for N rows of C.
size_t column_scratch_floats(size_t N, int C);

template <class Act>
void layernorm_forward(Act* out, float* mean, float* rstd, const Act* inp, const float* w, const float* b,
                       size_t N, int C);
// dinp += ..., dw += ..., db += ...
template <class Act>
void layernorm_backward(Act* dinp, float* dw, float* db, const Act* dout, const Act* inp, const float* w,
                        const float* mean, const float* rstd, size_t N, int C, float* scratch);

// out (N, OC) = inp (N, C) @ w (C, OC) + bias [+ residual (N, OC)], bias and residual fused into the GEMM.
template <class Act>
void matmul_forward(Gemm& gemm, Act* out, const Act* inp, const Act* w, const Act* bias, const Act* residual,
                    size_t N, int C, int OC);
// dinp = dout @ w^T; dw += inp^T @ dout (fp32 output of the GEMM); dbias += column sums of dout.
template <class Act>
void matmul_backward(Gemm& gemm, Act* dinp, float* dw, float* dbias, const Act* dout, const Act* inp,
                     const Act* w, size_t N, int C, int OC, float* scratch);

// logits (N, Vp) = inp (N, C) @ wte (Vp, C)^T; backward: dinp = dlogits @ wte, dwte += dlogits^T @ inp.
template <class Act>
void lm_head_forward(Gemm& gemm, Act* logits, const Act* inp, const Act* wte, size_t N, int C, int Vp);
template <class Act>
void lm_head_backward(Gemm& gemm, Act* dinp, float* dwte, const Act* dlogits, const Act* inp, const Act* wte,
                      size_t N, int C, int Vp);

// Causal self-attention as the CPU: per sequence, head-batched GEMMs straight on the
// interleaved qkv (B, T, 3C) rows, the scores in fp32 scratch (NH, T, T), softmax
// probabilities kept in att (B, NH, T, T) for backward.
template <class Act>
void attention_forward(Gemm& gemm, Act* out, Act* att, const Act* qkv, float* scores, int B, int T, int C,
                       int NH);
// Scratch: datt (NH, T, T) fp32 and dscores (NH, T, T) of Act (a GEMM operand).
template <class Act>
void attention_backward(Gemm& gemm, Act* dqkv, const Act* dout, const Act* qkv, const Act* att, float* datt,
                        Act* dscores, int B, int T, int C, int NH);

// GELU, tanh approximation. dinp may alias dout.
template <class Act>
void gelu_forward(Act* out, const Act* inp, size_t n);
template <class Act>
void gelu_backward(Act* dinp, const Act* inp, const Act* dout, size_t n);

// Cross-entropy over the first V of Vp columns (the padded columns never count).
template <class Act>
void crossentropy_forward(float* losses, float* lse, const Act* logits, const int32_t* targets, size_t N,
                          int V, int Vp);
// logits := (softmax - onehot) * dloss on the first V columns, 0 on the padding.
template <class Act>
void crossentropy_backward(Act* logits, const float* lse, const int32_t* targets, size_t N, int V, int Vp,
                           float dloss);

// One tensor of the layout for the fused AdamW kernel.
struct AdamWTensor {
  uint64_t offset = 0, numel = 0;
  int32_t decay = 0;
};
struct AdamWArgs {
  float beta1, beta2, eps;
  float decay_factor;  // 1 - lr * weight_decay, for tensors with decay
  float step_size;     // lr / (1 - beta1^t)
  float bc2_sqrt;      // sqrt(1 - beta2^t)
  float grad_scale;    // the clipping coefficient
};
// model/adamw.cpp's update on every tensor of the table (device memory, `tensors`
// entries, the largest `max_numel` elements), in one launch. params_bf16, when not
// null, receives the updated parameters rounded to bf16 (the GEMM copy).
void adamw_update(float* params, float* m, float* v, const float* grads, bf16* params_bf16,
                  const AdamWTensor* table, int tensors, size_t max_numel, const AdamWArgs& args);

// Σ x² in double: a fixed grid of per-block partials, summed on the host in order.
constexpr int kSumSquaresPartials = 1024;
double sum_squares(const float* x, size_t n, double* partials);

template <class Dst, class Src>
void convert(Dst* out, const Src* in, size_t n);  // float <-> bf16 (round to nearest even)

}  // namespace murmur::cuda

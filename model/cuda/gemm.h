// The one cuBLASLt wrapper of the CUDA model engine: every GEMM of forward and
// backward goes through Gemm::run, in row-major terms (as the CPU code and the
// HF Conv1D (in, out) weights are laid out). Always fp32 accumulation
// (CUBLAS_COMPUTE_32F: no TF32), so fp32 mode matches the CPU closely.
#pragma once

#include <cublasLt.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <tuple>

namespace murmur::cuda {

// Row-major D (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C [+ bias (N) per row],
// batched with element strides between the matrices of a batch. A and B share one type;
// C (defaults to D) and D share another, e.g. bf16 x bf16 -> fp32 for weight gradients.
struct GemmSpec {
  bool trans_a = false, trans_b = false;  // op(A) = A^T: A is stored (K, M)
  int64_t M = 0, N = 0, K = 0;
  const void* A = nullptr;
  int64_t lda = 0, stride_a = 0;
  const void* B = nullptr;
  int64_t ldb = 0, stride_b = 0;
  void* D = nullptr;
  int64_t ldd = 0, stride_d = 0;
  const void* C = nullptr;  // same layout as D; nullptr: D itself
  cudaDataType_t ab_type = CUDA_R_32F, d_type = CUDA_R_32F;
  float alpha = 1.0f, beta = 0.0f;
  const void* bias = nullptr;  // N elements of d_type, fused as a cuBLASLt epilogue; 16-byte aligned
  int batch = 1;
};

class Gemm {
 public:
  explicit Gemm(size_t workspace_bytes = size_t{32} << 20);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // On the legacy default stream. Throws std::invalid_argument for an empty shape or
  // a bias pointer that is not 16-byte aligned, std::runtime_error naming the shape
  // when cuBLASLt has no algorithm for it or fails.
  void run(const GemmSpec& s);

  // Heuristic candidates that cublasLtMatmul refused (CUBLAS_STATUS_NOT_SUPPORTED)
  // before one ran; the next candidate was tried instead. For tests and diagnostics.
  size_t rejected_algorithms() const { return rejected_; }

  // How many candidates the heuristic is asked for on a cache miss.
  static constexpr int kHeuristicResults = 8;

 private:
  // The algorithm depends on shapes, types, strides and the alignment of every
  // operand (of each matrix of a batch: the pointer and the batch stride in bytes).
  // The first candidate that runs is cached per distinct key (a training step
  // repeats the same GEMMs), so the same GEMM always runs the same algorithm.
  using Key = std::tuple<int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int64_t, int, int, bool, bool, int, int, int, int, int>;
  std::map<Key, cublasLtMatmulAlgo_t> algos_;
  size_t rejected_ = 0;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_;
};

}  // namespace murmur::cuda

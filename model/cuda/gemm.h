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
  const void* bias = nullptr;  // N elements of d_type, fused as a cuBLASLt epilogue
  int batch = 1;
};

class Gemm {
 public:
  explicit Gemm(size_t workspace_bytes = size_t{32} << 20);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // On the legacy default stream. Throws std::runtime_error naming the shape when
  // cuBLASLt has no algorithm for it or fails.
  void run(const GemmSpec& s);

 private:
  // The heuristic's choice depends on shapes, types, strides and pointer alignment;
  // it is looked up once per distinct key (a training step repeats the same GEMMs).
  using Key = std::tuple<int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int64_t, int, int, bool, bool, int, int>;
  std::map<Key, cublasLtMatmulAlgo_t> algos_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_;
};

}  // namespace murmur::cuda

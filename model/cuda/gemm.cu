// cuBLASLt is column-major: row-major D = op(A) op(B) is computed as the
// column-major D^T = op(B)^T op(A)^T, i.e. with A and B swapped and the
// dimensions read the other way round; no data moves.
#include <algorithm>
#include <string>

#include "model/cuda/cuda_util.h"
#include "model/cuda/gemm.h"

namespace murmur::cuda {
namespace {

// RAII holders for the per-call descriptors.
struct LayoutDesc {
  cublasLtMatrixLayout_t d = nullptr;
  LayoutDesc(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int batch, int64_t stride) {
    check(cublasLtMatrixLayoutCreate(&d, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld),
          "cublasLtMatrixLayoutCreate");
    if (batch > 1) {
      const int32_t count = batch;
      check(cublasLtMatrixLayoutSetAttribute(d, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count),
            "set batch count");
      check(cublasLtMatrixLayoutSetAttribute(d, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                             sizeof stride),
            "set batch stride");
    }
  }
  ~LayoutDesc() { cublasLtMatrixLayoutDestroy(d); }
  LayoutDesc(const LayoutDesc&) = delete;
  LayoutDesc& operator=(const LayoutDesc&) = delete;
};

struct MatmulDesc {
  cublasLtMatmulDesc_t d = nullptr;
  MatmulDesc() {
    check(cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  }
  ~MatmulDesc() { cublasLtMatmulDescDestroy(d); }
  MatmulDesc(const MatmulDesc&) = delete;
  MatmulDesc& operator=(const MatmulDesc&) = delete;
  template <class V>
  void set(cublasLtMatmulDescAttributes_t attr, const V& value, const char* what) {
    check(cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof value), what);
  }
};

struct Preference {
  cublasLtMatmulPreference_t d = nullptr;
  explicit Preference(size_t workspace) {
    check(cublasLtMatmulPreferenceCreate(&d), "cublasLtMatmulPreferenceCreate");
    const uint64_t bytes = workspace;
    check(cublasLtMatmulPreferenceSetAttribute(d, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes,
                                               sizeof bytes),
          "set workspace preference");
  }
  ~Preference() { cublasLtMatmulPreferenceDestroy(d); }
  Preference(const Preference&) = delete;
  Preference& operator=(const Preference&) = delete;
};

// Largest power of two (up to 256 bytes) dividing every pointer: cuBLASLt picks
// vectorised kernels by alignment, so it is part of the algorithm cache key.
int alignment_of(std::initializer_list<const void*> ptrs) {
  uintptr_t bits = 256;
  for (const void* p : ptrs)
    if (p) bits |= reinterpret_cast<uintptr_t>(p);
  return static_cast<int>(bits & (~bits + 1));
}

std::string describe(const GemmSpec& s) {
  return "(M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
         " trans_a=" + std::to_string(s.trans_a) + " trans_b=" + std::to_string(s.trans_b) +
         " batch=" + std::to_string(s.batch) + " lda=" + std::to_string(s.lda) +
         " ldb=" + std::to_string(s.ldb) + " ldd=" + std::to_string(s.ldd) + ")";
}

}  // namespace

Gemm::Gemm(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  check(cublasLtCreate(&handle_), "cublasLtCreate");
  const cudaError_t e = cudaMalloc(&workspace_, workspace_bytes_);
  if (e != cudaSuccess) {
    cublasLtDestroy(handle_);
    check(e, "cudaMalloc (cuBLASLt workspace)");
  }
}

Gemm::~Gemm() {
  cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

void Gemm::run(const GemmSpec& s) {
  if (s.M <= 0 || s.N <= 0 || s.K <= 0 || s.batch < 1)
    throw std::invalid_argument("gemm: empty or negative shape " + describe(s));
  // Column-major view: m = N, n = M; the first operand is B, the second A.
  const cublasOperation_t op_first = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int64_t m = s.N, n = s.M, k = s.K;
  const LayoutDesc first(s.ab_type, s.trans_b ? k : m, s.trans_b ? m : k, s.ldb, s.batch, s.stride_b);
  const LayoutDesc second(s.ab_type, s.trans_a ? n : k, s.trans_a ? k : n, s.lda, s.batch, s.stride_a);
  const LayoutDesc out(s.d_type, m, n, s.ldd, s.batch, s.stride_d);
  MatmulDesc desc;
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, op_first, "set transa");
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, op_second, "set transb");
  if (s.bias) {
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS, "set bias epilogue");
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, s.bias, "set bias pointer");
  }
  const void* c = s.C ? s.C : s.D;

  const Key key{s.trans_a,
                s.trans_b,
                s.M,
                s.N,
                s.K,
                s.lda,
                s.ldb,
                s.ldd,
                s.stride_a,
                s.stride_b,
                s.stride_d,
                static_cast<int>(s.ab_type),
                static_cast<int>(s.d_type),
                s.bias != nullptr,
                s.beta != 0.0f,
                s.batch,
                alignment_of({s.A, s.B, c, s.D, s.bias})};
  auto it = algos_.find(key);
  if (it == algos_.end()) {
    const Preference pref(workspace_bytes_);
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    check(cublasLtMatmulAlgoGetHeuristic(handle_, desc.d, first.d, second.d, out.d, out.d, pref.d, 1, &result,
                                         &found),
          ("cublasLtMatmulAlgoGetHeuristic " + describe(s)).c_str());
    if (found == 0) throw std::runtime_error("cuBLASLt has no algorithm for the GEMM " + describe(s));
    it = algos_.emplace(key, result.algo).first;
  }
  const cublasStatus_t status =
      cublasLtMatmul(handle_, desc.d, &s.alpha, s.B, first.d, s.A, second.d, &s.beta, c, out.d, s.D, out.d,
                     &it->second, workspace_, workspace_bytes_, nullptr);
  if (status != CUBLAS_STATUS_SUCCESS) check(status, ("cublasLtMatmul " + describe(s)).c_str());
}

}  // namespace murmur::cuda

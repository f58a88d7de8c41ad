// cuBLASLt is column-major: row-major D = op(A) op(B) is computed as the
// column-major D^T = op(B)^T op(A)^T, i.e. with A and B swapped and the
// dimensions read the other way round; no data moves.
#include <cstdint>
#include <stdexcept>
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
  Preference() { check(cublasLtMatmulPreferenceCreate(&d), "cublasLtMatmulPreferenceCreate"); }
  ~Preference() { cublasLtMatmulPreferenceDestroy(d); }
  Preference(const Preference&) = delete;
  Preference& operator=(const Preference&) = delete;
  template <class V>
  void set(cublasLtMatmulPreferenceAttributes_t attr, V value, const char* what) {
    check(cublasLtMatmulPreferenceSetAttribute(d, attr, &value, sizeof value), what);
  }
};

size_t element_bytes(cudaDataType_t t) {
  switch (t) {
    case CUDA_R_32F:
      return 4;
    case CUDA_R_16BF:
    case CUDA_R_16F:
      return 2;
    default:
      throw std::invalid_argument("gemm: unsupported data type " + std::to_string(static_cast<int>(t)));
  }
}

// Largest power of two (up to 256) dividing the byte address of every matrix of an
// operand: its pointer and, in a batch, its batch stride in bytes. cuBLASLt picks
// vectorised kernels by alignment, so the heuristic is told it (and it is part of
// the algorithm cache key).
int alignment_of(const void* p, int64_t stride, int batch, cudaDataType_t type) {
  uintptr_t bits = 256 | reinterpret_cast<uintptr_t>(p);
  if (batch > 1) bits |= static_cast<uintptr_t>(stride) * element_bytes(type);
  return static_cast<int>(bits & (~bits + 1));
}

struct Alignments {
  int a, b, c, d;  // row-major operands, as in GemmSpec
};

std::string describe(const GemmSpec& s, const Alignments* al = nullptr) {
  std::string d = "(M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
                  " trans_a=" + std::to_string(s.trans_a) + " trans_b=" + std::to_string(s.trans_b) +
                  " batch=" + std::to_string(s.batch) + " lda=" + std::to_string(s.lda) +
                  " ldb=" + std::to_string(s.ldb) + " ldd=" + std::to_string(s.ldd);
  if (al)
    d += " alignment A/B/C/D=" + std::to_string(al->a) + "/" + std::to_string(al->b) + "/" +
         std::to_string(al->c) + "/" + std::to_string(al->d) + " bytes";
  return d + ")";
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
  const void* c = s.C ? s.C : s.D;
  const Alignments al{
      alignment_of(s.A, s.stride_a, s.batch, s.ab_type), alignment_of(s.B, s.stride_b, s.batch, s.ab_type),
      alignment_of(c, s.stride_d, s.batch, s.d_type), alignment_of(s.D, s.stride_d, s.batch, s.d_type)};
  if (s.bias && alignment_of(s.bias, 0, 1, s.d_type) < 16)
    throw std::invalid_argument(
        "gemm: the bias pointer must be 16-byte aligned for cuBLASLt's bias epilogue " + describe(s, &al));
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
  const auto matmul = [&](const cublasLtMatmulAlgo_t& algo) {
    return cublasLtMatmul(handle_, desc.d, &s.alpha, s.B, first.d, s.A, second.d, &s.beta, c, out.d, s.D,
                          out.d, &algo, workspace_, workspace_bytes_, nullptr);
  };

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
                al.a,
                al.b,
                al.c,
                al.d};
  if (const auto it = algos_.find(key); it != algos_.end()) {
    const cublasStatus_t status = matmul(it->second);
    if (status != CUBLAS_STATUS_NOT_SUPPORTED) {
      check(status, ("cublasLtMatmul " + describe(s, &al)).c_str());
      return;
    }
    algos_.erase(it);  // refused although it ran before: look again
    ++rejected_;
  }

  // Ask for several candidates, told the real alignments (cuBLASLt's A is our B:
  // the row-major operands are swapped), and keep the first one that runs. A refusal
  // (CUBLAS_STATUS_NOT_SUPPORTED) launches nothing, so trying the next is safe even
  // when beta != 0.
  Preference pref;
  pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, static_cast<uint64_t>(workspace_bytes_),
           "set workspace preference");
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, static_cast<uint32_t>(al.b), "set alignment of A");
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, static_cast<uint32_t>(al.a), "set alignment of B");
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, static_cast<uint32_t>(al.c), "set alignment of C");
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, static_cast<uint32_t>(al.d), "set alignment of D");
  cublasLtMatmulHeuristicResult_t results[kHeuristicResults] = {};
  int found = 0;
  const cublasStatus_t heuristic = cublasLtMatmulAlgoGetHeuristic(
      handle_, desc.d, first.d, second.d, out.d, out.d, pref.d, kHeuristicResults, results, &found);
  if (heuristic == CUBLAS_STATUS_NOT_SUPPORTED || (heuristic == CUBLAS_STATUS_SUCCESS && found == 0))
    throw std::runtime_error("cuBLASLt has no algorithm for the GEMM " + describe(s, &al));
  check(heuristic, ("cublasLtMatmulAlgoGetHeuristic " + describe(s, &al)).c_str());
  int refused = 0;
  for (int i = 0; i < found; ++i) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS || results[i].workspaceSize > workspace_bytes_) continue;
    const cublasStatus_t status = matmul(results[i].algo);
    if (status == CUBLAS_STATUS_NOT_SUPPORTED) {
      ++refused;
      ++rejected_;
      continue;
    }
    check(status, ("cublasLtMatmul " + describe(s, &al)).c_str());
    algos_.emplace(key, results[i].algo);
    return;
  }
  throw std::runtime_error("cuBLASLt refused all " + std::to_string(found) +
                           " algorithms its heuristic offered for the GEMM " + describe(s, &al) + " (" +
                           std::to_string(refused) + " answered CUBLAS_STATUS_NOT_SUPPORTED)");
}

}  // namespace murmur::cuda

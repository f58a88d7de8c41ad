// Entry points of the CUDA backend. In a build without CUDA they exist too and
// report that clearly, so callers never need #ifdefs.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "model/backend.h"

namespace murmur {

// Number of visible CUDA devices; 0 in a CPU-only build. why_none explains a 0.
int cuda_device_count(std::string* why_none = nullptr);

// fp32: fp32 activations and GEMMs (no TF32), for tests against the CPU backend.
// bf16: bf16 activations and GEMM operands, fp32 accumulation, fp32 master
// weights, gradients and AdamW moments (docs/cuda.md).
enum class CudaPrecision { fp32, bf16 };
CudaPrecision parse_cuda_precision(std::string_view name);  // "fp32" | "bf16"; throws std::invalid_argument
// MURMUR_CUDA_PRECISION from the environment; bf16 when unset.
CudaPrecision cuda_precision_from_env();

// Throws std::runtime_error naming the reason when no usable GPU or no CUDA build.
// The backend runs on the calling thread's current CUDA device.
std::unique_ptr<ModelBackend> make_cuda_backend(const ModelConfig& cfg, int max_batch, int max_context,
                                                CudaPrecision precision = cuda_precision_from_env());

}  // namespace murmur

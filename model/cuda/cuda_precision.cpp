#include <cstdlib>
#include <stdexcept>
#include <string>

#include "model/cuda/cuda_backend.h"

namespace murmur {

CudaPrecision parse_cuda_precision(std::string_view name) {
  if (name == "fp32") return CudaPrecision::fp32;
  if (name == "bf16") return CudaPrecision::bf16;
  throw std::invalid_argument("unknown CUDA precision '" + std::string(name) + "' (expected fp32 or bf16)");
}

CudaPrecision cuda_precision_from_env() {
  const char* v = std::getenv("MURMUR_CUDA_PRECISION");
  if (!v || !*v) return CudaPrecision::bf16;
  try {
    return parse_cuda_precision(v);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("MURMUR_CUDA_PRECISION: ") + e.what());
  }
}

}  // namespace murmur

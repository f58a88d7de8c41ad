// CPU-only builds (MURMUR_CUDA=OFF or no nvcc): the CUDA entry points say so.
#include <stdexcept>

#include "model/cuda/cuda_backend.h"

namespace murmur {

int cuda_device_count(std::string* why_none) {
  if (why_none)
    *why_none = "this build has no CUDA support (configured with MURMUR_CUDA=OFF or without nvcc)";
  return 0;
}

std::unique_ptr<ModelBackend> make_cuda_backend(const ModelConfig&, int, int, CudaPrecision) {
  throw std::runtime_error(
      "--device cuda: this build has no CUDA support; rebuild with -DMURMUR_CUDA=ON on a machine with nvcc");
}

}  // namespace murmur

// CUDA builds: device discovery. The device model engine itself lands with the
// CUDA backend work (issue 3); until then --device cuda fails with a clear error.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "model/cuda/cuda_backend.h"

namespace murmur {

int cuda_device_count(std::string* why_none) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why_none) *why_none = std::string("no CUDA device visible: ") + cudaGetErrorString(err);
    return 0;
  }
  if (n == 0 && why_none) *why_none = "no CUDA device visible";
  return n;
}

std::unique_ptr<ModelBackend> make_cuda_backend(const ModelConfig&, int, int) {
  std::string why;
  if (cuda_device_count(&why) == 0) throw std::runtime_error("--device cuda: " + why);
  throw std::runtime_error("--device cuda: the CUDA model backend is not implemented in this version yet");
}

}  // namespace murmur

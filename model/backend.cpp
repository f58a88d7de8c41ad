#include "model/backend.h"

#include <stdexcept>
#include <string>

#include "model/cuda/cuda_backend.h"
#include "model/gpt_cpu.h"

namespace murmur {

Device parse_device(std::string_view name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  throw std::invalid_argument("unknown device '" + std::string(name) + "' (expected cpu or cuda)");
}

const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

std::unique_ptr<ModelBackend> make_backend(Device device, const ModelConfig& cfg, int max_batch,
                                           int max_context, int threads) {
  if (device == Device::cuda) return make_cuda_backend(cfg, max_batch, max_context);
  return make_cpu_backend(cfg, max_batch, max_context, threads);
}

}  // namespace murmur

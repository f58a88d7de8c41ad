// Entry points of the CUDA backend. In a build without CUDA they exist too and
// report that clearly, so callers never need #ifdefs.
#pragma once

#include <memory>
#include <string>

#include "model/backend.h"

namespace murmur {

// Number of visible CUDA devices; 0 in a CPU-only build. why_none explains a 0.
int cuda_device_count(std::string* why_none = nullptr);

// Throws std::runtime_error naming the reason when no usable GPU or no CUDA build.
std::unique_ptr<ModelBackend> make_cuda_backend(const ModelConfig& cfg, int max_batch, int max_context);

}  // namespace murmur

// The fp32 CPU backend: forward and backward of GPT-2 over flat buffers.
#pragma once

#include <memory>

#include "model/backend.h"

namespace murmur {

std::unique_ptr<ModelBackend> make_cpu_backend(const ModelConfig& cfg, int max_batch, int max_context,
                                               int threads);

}  // namespace murmur

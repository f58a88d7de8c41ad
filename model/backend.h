// The model backend interface: one GPT-2 replica with its parameters,
// gradients and AdamW moments in flat buffers laid out by gpt2_layout(). The
// CPU backend is the fp32 reference; the CUDA backend implements the same calls.
//
// Threading: a backend is used by one thread at a time (the trainer thread).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "model/config.h"
#include "model/layout.h"

namespace murmur {

enum class Device { cpu, cuda };
Device parse_device(std::string_view name);  // "cpu" | "cuda"; throws std::invalid_argument
const char* device_name(Device d);

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;  // decoupled; applies to tensors with TensorInfo::decay
};

class ModelBackend {
 public:
  virtual ~ModelBackend() = default;

  virtual const ModelConfig& config() const = 0;
  virtual const ParamLayout& layout() const = 0;
  virtual Device device() const = 0;
  virtual int max_batch() const = 0;
  virtual int max_context() const = 0;

  // Host copies of the flat buffers (layout().total() floats each).
  virtual void read_params(std::span<float> out) const = 0;
  virtual void write_params(std::span<const float> in) = 0;
  virtual void read_grads(std::span<float> out) const = 0;
  // Replaces the gradients, e.g. with their average over data-parallel peers.
  virtual void write_grads(std::span<const float> in) = 0;
  virtual void read_moments(std::span<float> m, std::span<float> v) const = 0;
  virtual void write_moments(std::span<const float> m, std::span<const float> v) = 0;

  // inputs/targets (B, T) with B <= max_batch(), T <= max_context(); targets may be
  // null (no loss). Returns the mean cross-entropy in nats (0 without targets).
  virtual float forward(const int32_t* inputs, const int32_t* targets, int B, int T) = 0;
  // Logits (B, T, Vp) of the last forward; valid until the next backward().
  virtual void read_logits(std::span<float> out) const = 0;
  virtual void zero_grad() = 0;
  // Accumulates d(dloss * Σ token losses)/dθ into the gradients, after a forward with targets.
  virtual void backward(float dloss) = 0;
  virtual double grad_norm() = 0;  // global L2 norm of the gradients
  // One AdamW step (PyTorch semantics) with gradients multiplied by grad_scale
  // (the clipping coefficient); t is the 1-based step count for bias correction.
  virtual void adamw_step(const AdamWConfig& cfg, float lr, float grad_scale, int64_t t) = 0;
};

// threads: CPU worker threads (0 = all cores). Throws std::runtime_error if the
// device is unavailable (e.g. cuda in a build without CUDA or with no GPU visible).
std::unique_ptr<ModelBackend> make_backend(Device device, const ModelConfig& cfg, int max_batch,
                                           int max_context, int threads);

}  // namespace murmur

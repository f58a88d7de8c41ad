#include "model/adamw.h"

#include <cmath>

namespace murmur {

void adamw_update_cpu(float* params, float* m, float* v, const float* grads, const ParamLayout& layout,
                      const AdamWConfig& cfg, float lr, float grad_scale, int64_t t) {
  const float b1 = cfg.beta1, b2 = cfg.beta2;
  const float bc1 = 1.0f - std::pow(b1, static_cast<float>(t));
  const float bc2_sqrt = std::sqrt(1.0f - std::pow(b2, static_cast<float>(t)));
  const float step_size = lr / bc1;
  for (const TensorInfo& tensor : layout.tensors()) {
    const float decay = tensor.decay ? 1.0f - lr * cfg.weight_decay : 1.0f;
    float* p = params + tensor.offset;
    float* mm = m + tensor.offset;
    float* vv = v + tensor.offset;
    const float* g = grads + tensor.offset;
    const auto n = static_cast<int64_t>(tensor.numel);
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i] * grad_scale;
      mm[i] = b1 * mm[i] + (1.0f - b1) * gi;
      vv[i] = b2 * vv[i] + (1.0f - b2) * gi * gi;
      const float denom = std::sqrt(vv[i]) / bc2_sqrt + cfg.eps;
      p[i] = p[i] * decay - step_size * mm[i] / denom;
    }
  }
}

float LrSchedule::at(int64_t s) const {
  if (warmup > 0 && s < warmup) return max_lr * static_cast<float>(s + 1) / static_cast<float>(warmup);
  const float min_lr = max_lr * min_lr_frac;
  if (total <= warmup || s >= total) return total <= warmup ? max_lr : min_lr;
  const double ratio = static_cast<double>(s - warmup) / static_cast<double>(total - warmup);
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));
  return static_cast<float>(min_lr + coeff * (max_lr - min_lr));
}

float clip_coefficient(double grad_norm, float max_norm) {
  if (max_norm <= 0.0f) return 1.0f;
  const double c = max_norm / (grad_norm + 1e-6);
  return c < 1.0 ? static_cast<float>(c) : 1.0f;
}

}  // namespace murmur

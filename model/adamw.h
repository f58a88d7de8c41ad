// AdamW and the learning-rate schedule over flat buffers.
#pragma once

#include <cstdint>

#include "model/backend.h"
#include "model/layout.h"

namespace murmur {

// One AdamW step on every tensor of the layout, PyTorch's formulation:
//   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//   p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps),  g = grad_scale * grad.
void adamw_update_cpu(float* params, float* m, float* v, const float* grads, const ParamLayout& layout,
                      const AdamWConfig& cfg, float lr, float grad_scale, int64_t t);

struct LrSchedule {
  float max_lr = 1e-3f;
  float min_lr_frac = 0.1f;  // final lr = max_lr * min_lr_frac
  int64_t warmup = 0;        // linear warm-up steps
  int64_t total = 0;         // steps of the run (cosine decay ends here)

  // Learning rate of 0-based step s: (s+1)/warmup ramp, then cosine decay to min.
  float at(int64_t s) const;
};

// PyTorch's clip_grad_norm_ coefficient: min(1, max_norm / (norm + 1e-6)); max_norm <= 0 disables clipping.
float clip_coefficient(double grad_norm, float max_norm);

}  // namespace murmur

#include "model/init.h"

#include <cmath>
#include <string>

namespace murmur {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

void init_gpt2_params(std::span<float> params, const ParamLayout& layout, const ModelConfig& cfg,
                      uint64_t seed) {
  std::fill(params.begin(), params.end(), 0.0f);
  const double proj_std = 0.02 / std::sqrt(2.0 * cfg.n_layer);
  for (size_t i = 0; i < layout.tensors().size(); ++i) {
    const TensorInfo& t = layout.tensors()[i];
    float* p = params.data() + t.offset;
    if (ends_with(t.name, "ln_1.weight") || ends_with(t.name, "ln_2.weight") ||
        ends_with(t.name, "ln_f.weight")) {
      std::fill(p, p + t.numel, 1.0f);
      continue;
    }
    if (ends_with(t.name, ".bias")) continue;
    // One stream per tensor, so adding layers never shifts the others' values.
    SplitMix64 rng(seed * 0x100000001b3ULL + i + 1);
    const double std = ends_with(t.name, "c_proj.weight") ? proj_std : 0.02;
    size_t n = t.numel;
    if (t.name == "transformer.wte.weight")
      n = static_cast<size_t>(cfg.vocab_size) * cfg.n_embd;  // padding stays 0
    for (size_t j = 0; j < n; ++j) p[j] = static_cast<float>(rng.normal() * std);
  }
}

}  // namespace murmur

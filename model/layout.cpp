#include "model/layout.h"

#include <stdexcept>

namespace murmur {

void ParamLayout::add(std::string name, std::vector<int64_t> shape, bool decay) {
  size_t numel = 1;
  for (int64_t d : shape) numel *= static_cast<size_t>(d);
  TensorInfo t{std::move(name), std::move(shape), total_, numel, decay};
  total_ += (numel + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  tensors_.push_back(std::move(t));
}

const TensorInfo* ParamLayout::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorInfo& ParamLayout::at(const std::string& name) const {
  if (const TensorInfo* t = find(name)) return *t;
  throw std::out_of_range("no tensor named '" + name + "' in the parameter layout");
}

ParamLayout gpt2_layout(const ModelConfig& cfg) {
  const int64_t C = cfg.n_embd;
  ParamLayout l;
  l.add("transformer.wte.weight", {cfg.padded_vocab, C}, true);
  l.add("transformer.wpe.weight", {cfg.n_ctx, C}, true);
  for (int i = 0; i < cfg.n_layer; ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    l.add(p + "ln_1.weight", {C}, false);
    l.add(p + "ln_1.bias", {C}, false);
    l.add(p + "attn.c_attn.weight", {C, 3 * C}, true);
    l.add(p + "attn.c_attn.bias", {3 * C}, false);
    l.add(p + "attn.c_proj.weight", {C, C}, true);
    l.add(p + "attn.c_proj.bias", {C}, false);
    l.add(p + "ln_2.weight", {C}, false);
    l.add(p + "ln_2.bias", {C}, false);
    l.add(p + "mlp.c_fc.weight", {C, 4 * C}, true);
    l.add(p + "mlp.c_fc.bias", {4 * C}, false);
    l.add(p + "mlp.c_proj.weight", {4 * C, C}, true);
    l.add(p + "mlp.c_proj.bias", {C}, false);
  }
  l.add("transformer.ln_f.weight", {C}, false);
  l.add("transformer.ln_f.bias", {C}, false);
  return l;
}

ModelTensors bind_tensors(const ParamLayout& layout, const ModelConfig& cfg, float* base) {
  auto ptr = [&](const std::string& n) { return base + layout.at(n).offset; };
  ModelTensors m{};
  m.wte = ptr("transformer.wte.weight");
  m.wpe = ptr("transformer.wpe.weight");
  for (int i = 0; i < cfg.n_layer; ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    m.blocks.push_back({ptr(p + "ln_1.weight"), ptr(p + "ln_1.bias"), ptr(p + "attn.c_attn.weight"),
                        ptr(p + "attn.c_attn.bias"), ptr(p + "attn.c_proj.weight"),
                        ptr(p + "attn.c_proj.bias"), ptr(p + "ln_2.weight"), ptr(p + "ln_2.bias"),
                        ptr(p + "mlp.c_fc.weight"), ptr(p + "mlp.c_fc.bias"), ptr(p + "mlp.c_proj.weight"),
                        ptr(p + "mlp.c_proj.bias")});
  }
  m.lnf_w = ptr("transformer.ln_f.weight");
  m.lnf_b = ptr("transformer.ln_f.bias");
  return m;
}

}  // namespace murmur

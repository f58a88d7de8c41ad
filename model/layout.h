// The layout table of the flat parameter buffer: every tensor of the model is a
// named span {name, shape, offset} of one contiguous float buffer. Gradients,
// AdamW moments, gossip deltas and checkpoints all use the same table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace murmur {

struct TensorInfo {
  std::string name;            // Hugging Face GPT-2 name, e.g. "transformer.h.0.attn.c_attn.weight"
  std::vector<int64_t> shape;  // as stored here; Conv1D weights are (in, out) as in HF
  size_t offset = 0;           // in floats from the start of the buffer; multiple of kAlignFloats
  size_t numel = 0;
  bool decay = false;  // weight decay applies (matrices, not biases/LayerNorm)
};

class ParamLayout {
 public:
  // Offsets are aligned to 16 floats (64 bytes) so every tensor starts on a
  // cache line and stays 16-byte aligned for vector and CUDA loads.
  static constexpr size_t kAlignFloats = 16;

  void add(std::string name, std::vector<int64_t> shape, bool decay);
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo& at(const std::string& name) const;  // throws std::out_of_range naming it
  const TensorInfo* find(const std::string& name) const;
  size_t total() const { return total_; }  // buffer length in floats, padding included

 private:
  std::vector<TensorInfo> tensors_;
  size_t total_ = 0;
};

// GPT-2 layout: wte (Vp, C) [tied with the LM head], wpe (T, C), per layer
// ln_1, attn.c_attn (C, 3C), attn.c_proj (C, C), ln_2, mlp.c_fc (C, 4C),
// mlp.c_proj (4C, C), then ln_f.
ParamLayout gpt2_layout(const ModelConfig& cfg);

// Pointers into a flat buffer for one transformer block (parameters or gradients).
struct BlockTensors {
  float *ln1_w, *ln1_b;    // (C)
  float *qkv_w, *qkv_b;    // (C, 3C), (3C)
  float *attn_w, *attn_b;  // (C, C), (C)
  float *ln2_w, *ln2_b;    // (C)
  float *fc_w, *fc_b;      // (C, 4C), (4C)
  float *proj_w, *proj_b;  // (4C, C), (C)
};
struct ModelTensors {
  float *wte, *wpe;  // (Vp, C), (T, C)
  std::vector<BlockTensors> blocks;
  float *lnf_w, *lnf_b;  // (C)
};
ModelTensors bind_tensors(const ParamLayout& layout, const ModelConfig& cfg, float* base);

}  // namespace murmur

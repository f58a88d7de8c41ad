// GPT-2 model configuration and named presets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace murmur {

struct ModelConfig {
  int n_layer = 0;
  int n_head = 0;
  int n_embd = 0;        // C
  int n_ctx = 0;         // maximum sequence length (learned positions)
  int vocab_size = 0;    // V: real vocabulary size
  int padded_vocab = 0;  // Vp: V rounded up so the (Vp, C) embedding GEMMs stay aligned

  // Throws std::invalid_argument naming the offending field (e.g. heads not dividing width).
  void validate() const;
  // Fills padded_vocab from vocab_size, then validates.
  void finalize();
  int head_size() const { return n_embd / n_head; }
  std::string describe() const;  // "L=4 H=4 C=256 T=256 V=256"
  size_t num_params() const;     // real parameters (vocabulary padding excluded)
  // Training FLOPs per token at context T: 6 per weight plus attention's
  // 12·L·C·T (PaLM appendix B), the basis of throughput and MFU figures.
  double train_flops_per_token(int T) const;
};

// Vocabulary rounded up to a multiple of 128 (GPT-2: 50257 -> 50304).
int pad_vocab(int vocab_size);

// Presets: tiny (tests), small (CPU demo), gpt2-124m, gpt2-350m.
// Throws std::invalid_argument listing the known names for an unknown one.
ModelConfig preset_config(std::string_view name);
std::vector<std::string> preset_names();

}  // namespace murmur

#include "model/config.h"

#include <stdexcept>

namespace murmur {

namespace {
struct Preset {
  const char* name;
  ModelConfig cfg;
};
// Byte-level presets use vocab 256; the GPT-2 sizes use the BPE vocabulary.
const Preset kPresets[] = {
    {"tiny", {2, 2, 32, 64, 256, 0}},
    {"small", {4, 4, 256, 256, 256, 0}},
    {"gpt2-124m", {12, 12, 768, 1024, 50257, 0}},
    {"gpt2-350m", {24, 16, 1024, 1024, 50257, 0}},
};
}  // namespace

int pad_vocab(int vocab_size) { return (vocab_size + 127) / 128 * 128; }

void ModelConfig::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("invalid model config: " + what);
  };
  need(n_layer >= 1 && n_layer <= 256, "n_layer must be in 1..256 (got " + std::to_string(n_layer) + ")");
  need(n_head >= 1 && n_head <= 256, "n_head must be in 1..256 (got " + std::to_string(n_head) + ")");
  need(n_embd >= 1 && n_embd <= 65536, "n_embd must be in 1..65536 (got " + std::to_string(n_embd) + ")");
  need(n_embd % n_head == 0,
       "n_head (" + std::to_string(n_head) + ") must divide n_embd (" + std::to_string(n_embd) + ")");
  need(n_ctx >= 1 && n_ctx <= 1 << 20, "n_ctx must be in 1..1048576 (got " + std::to_string(n_ctx) + ")");
  need(vocab_size >= 2 && vocab_size <= 65536,
       "vocab_size must be in 2..65536 (token ids are 16-bit; got " + std::to_string(vocab_size) + ")");
  need(padded_vocab >= vocab_size && padded_vocab % 128 == 0,
       "padded_vocab must be a multiple of 128 and at least vocab_size");
}

void ModelConfig::finalize() {
  padded_vocab = pad_vocab(vocab_size);
  validate();
}

std::string ModelConfig::describe() const {
  return "L=" + std::to_string(n_layer) + " H=" + std::to_string(n_head) + " C=" + std::to_string(n_embd) +
         " T=" + std::to_string(n_ctx) + " V=" + std::to_string(vocab_size);
}

size_t ModelConfig::num_params() const {
  const size_t C = n_embd, L = n_layer;
  return static_cast<size_t>(vocab_size) * C + static_cast<size_t>(n_ctx) * C + L * (12 * C * C + 13 * C) +
         2 * C;
}

double ModelConfig::train_flops_per_token(int T) const {
  return 6.0 * static_cast<double>(num_params()) + 12.0 * n_layer * n_embd * static_cast<double>(T);
}

ModelConfig preset_config(std::string_view name) {
  for (const auto& p : kPresets) {
    if (name == p.name) {
      ModelConfig c = p.cfg;
      c.finalize();
      return c;
    }
  }
  std::string known;
  for (const auto& p : kPresets) known += std::string(known.empty() ? "" : ", ") + p.name;
  throw std::invalid_argument("unknown model preset '" + std::string(name) + "' (known: " + known + ")");
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& p : kPresets) names.emplace_back(p.name);
  return names;
}

}  // namespace murmur

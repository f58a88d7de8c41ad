// Token shards (see token_shard.h for the format) and prepared data directories.
#include "model/token_shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "model/atomic_file.h"

namespace murmur {

namespace fs = std::filesystem;

// Tokens are mapped and written as native uint16; the format is little-endian.
static_assert(std::endian::native == std::endian::little, "token shards assume a little-endian host");

namespace {

constexpr char kMagic[8] = {'M', 'U', 'R', 'M', 'T', 'O', 'K', '\0'};
constexpr uint32_t kDtypeBytes = 2;

struct Header {
  uint64_t count = 0;
  uint32_t version = 0;
  uint32_t dtype = 0;
  uint32_t vocab_size = 0;
};

template <typename T>
void store_le(unsigned char* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

template <typename T>
T load_le(const unsigned char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(p[i]) << (8 * i);
  return v;
}

std::runtime_error shard_error(const fs::path& path, const std::string& problem) {
  return std::runtime_error("token shard " + path.string() + ": " + problem);
}

void check_header(const fs::path& path, const unsigned char* raw, uint64_t file_bytes) {
  if (std::memcmp(raw, kMagic, sizeof kMagic) != 0) {
    throw shard_error(path, "not a Murmur token shard (bad magic; expected \"MURMTOK\")");
  }
  const uint32_t version = load_le<uint32_t>(raw + 8);
  if (version != kShardVersion) {
    throw shard_error(path, "unsupported format version " + std::to_string(version) + " (this build reads " +
                                std::to_string(kShardVersion) + ")");
  }
  const uint32_t dtype = load_le<uint32_t>(raw + 12);
  if (dtype != kDtypeBytes) {
    throw shard_error(path,
                      "unsupported dtype of " + std::to_string(dtype) + " bytes per token (expected 2)");
  }
  const uint64_t count = load_le<uint64_t>(raw + 16);
  const uint64_t payload = file_bytes - kShardHeaderBytes;
  if (count > payload / kDtypeBytes || payload != count * kDtypeBytes) {
    throw shard_error(path, "size mismatch: the header promises " + std::to_string(count) + " tokens (" +
                                std::to_string(kShardHeaderBytes) + " + " + std::to_string(count) +
                                " x 2 bytes) but the file has " + std::to_string(file_bytes) +
                                " bytes (truncated or corrupt)");
  }
  const uint32_t vocab = load_le<uint32_t>(raw + 24);
  if (vocab == 0 || vocab > 65536) {
    throw shard_error(path, "vocabulary size " + std::to_string(vocab) + " is outside 1..65536");
  }
}

}  // namespace

void write_shard(const fs::path& path, std::span<const uint16_t> tokens, int vocab_size) {
  if (vocab_size < 1 || vocab_size > 65536) {
    throw std::invalid_argument("write_shard " + path.string() + ": vocabulary size " +
                                std::to_string(vocab_size) + " is outside 1..65536");
  }
  const auto bad = std::find_if(tokens.begin(), tokens.end(), [&](uint16_t t) { return t >= vocab_size; });
  if (bad != tokens.end()) {
    throw std::invalid_argument("write_shard " + path.string() + ": token " + std::to_string(*bad) +
                                " at index " + std::to_string(bad - tokens.begin()) +
                                " is >= the vocabulary size " + std::to_string(vocab_size));
  }
  unsigned char header[kShardHeaderBytes] = {};
  std::memcpy(header, kMagic, sizeof kMagic);
  store_le<uint32_t>(header + 8, kShardVersion);
  store_le<uint32_t>(header + 12, kDtypeBytes);
  store_le<uint64_t>(header + 16, tokens.size());
  store_le<uint32_t>(header + 24, static_cast<uint32_t>(vocab_size));
  write_file_atomic(path, [&](std::FILE* f) {
    if (std::fwrite(header, 1, sizeof header, f) != sizeof header ||
        (!tokens.empty() && std::fwrite(tokens.data(), kDtypeBytes, tokens.size(), f) != tokens.size())) {
      throw std::runtime_error("cannot write token shard " + path.string() + ": " + std::strerror(errno));
    }
  });
}

TokenShard::TokenShard(const fs::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw shard_error(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw shard_error(path, std::string("cannot stat: ") + std::strerror(errno));
  }
  const auto bytes = static_cast<uint64_t>(st.st_size);
  if (bytes < kShardHeaderBytes) {
    ::close(fd);
    throw shard_error(
        path, bytes == 0 ? "empty file" : "truncated header (" + std::to_string(bytes) + " of 64 bytes)");
  }
  void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) throw shard_error(path, std::string("cannot mmap: ") + std::strerror(errno));
  map_ = map;
  map_bytes_ = bytes;
  const auto* raw = static_cast<const unsigned char*>(map);
  try {
    check_header(path, raw, bytes);
  } catch (...) {
    ::munmap(map_, map_bytes_);
    throw;
  }
  data_ = reinterpret_cast<const uint16_t*>(raw + kShardHeaderBytes);
  count_ = load_le<uint64_t>(raw + 16);
  vocab_size_ = static_cast<int>(load_le<uint32_t>(raw + 24));
  // One pass over the tokens so a corrupt id fails here, not as an out-of-bounds embedding row.
  const uint16_t* bad = std::find_if(data_, data_ + count_, [&](uint16_t t) { return t >= vocab_size_; });
  if (bad != data_ + count_) {
    const std::string problem = "token " + std::to_string(*bad) + " at index " + std::to_string(bad - data_) +
                                " is >= the vocabulary size " + std::to_string(vocab_size_);
    ::munmap(map_, map_bytes_);
    throw shard_error(path, problem);
  }
}

TokenShard::~TokenShard() {
  if (map_) ::munmap(map_, map_bytes_);
}

TokenShard::TokenShard(TokenShard&& o) noexcept { *this = std::move(o); }

TokenShard& TokenShard::operator=(TokenShard&& o) noexcept {
  std::swap(path_, o.path_);
  std::swap(map_, o.map_);
  std::swap(map_bytes_, o.map_bytes_);
  std::swap(data_, o.data_);
  std::swap(count_, o.count_);
  std::swap(vocab_size_, o.vocab_size_);
  return *this;
}

// ---------------------------------------------------------------- TokenDataset

namespace {

bool is_shard_name(std::string_view name, const std::string& split) {
  const std::string prefix = split + "_";
  if (name.size() != prefix.size() + 6 + 4 || !name.starts_with(prefix) || !name.ends_with(".bin"))
    return false;
  const std::string_view digits = name.substr(prefix.size(), 6);
  return std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

nlohmann::json read_meta(const fs::path& dir) {
  const fs::path path = dir / "meta.json";
  if (!fs::is_directory(dir)) throw std::runtime_error("data directory " + dir.string() + " does not exist");
  if (!fs::exists(path)) {
    throw std::runtime_error(path.string() + " is missing (prepare the data with `murmur data prepare`)");
  }
  try {
    return nlohmann::json::parse(read_text_file(path, 1 << 20));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path.string() + ": invalid JSON (" + e.what() + ")");
  }
}

template <typename T>
T meta_field(const nlohmann::json& meta, const fs::path& dir, const char* key) {
  const auto it = meta.find(key);
  if (it == meta.end())
    throw std::runtime_error((dir / "meta.json").string() + ": missing field \"" + key + "\"");
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::runtime_error((dir / "meta.json").string() + ": field \"" + key + "\" has the wrong type");
  }
}

}  // namespace

fs::path shard_path(const fs::path& dir, const std::string& split, size_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "_%06zu.bin", index);
  return dir / (split + name);
}

std::vector<fs::path> list_shards(const fs::path& dir, const std::string& split) {
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && is_shard_name(entry.path().filename().string(), split)) {
      paths.push_back(entry.path());
    }
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

TokenDataset::TokenDataset(const fs::path& dir, const std::string& split) {
  if (split != "train" && split != "val") {
    throw std::invalid_argument("unknown data split '" + split + "' (expected train or val)");
  }
  const nlohmann::json meta = read_meta(dir);
  if (!meta.is_object()) throw std::runtime_error((dir / "meta.json").string() + ": expected a JSON object");
  tokenizer_ = meta_field<std::string>(meta, dir, "tokenizer");
  vocab_size_ = meta_field<int>(meta, dir, "vocab_size");
  const auto expected = meta_field<uint64_t>(meta, dir, (split + "_tokens").c_str());
  const std::vector<fs::path> paths = list_shards(dir, split);
  if (paths.empty()) throw std::runtime_error(dir.string() + ": no " + split + "_NNNNNN.bin shards");
  for (const fs::path& p : paths) {
    TokenShard shard(p);
    if (shard.vocab_size() != vocab_size_) {
      throw std::runtime_error("token shard " + p.string() + ": vocabulary size " +
                               std::to_string(shard.vocab_size()) + " differs from meta.json's " +
                               std::to_string(vocab_size_));
    }
    starts_.push_back(total_);
    total_ += shard.tokens().size();
    shards_.push_back(std::move(shard));
  }
  if (total_ != expected) {
    throw std::runtime_error(dir.string() + ": the " + split + " shards hold " + std::to_string(total_) +
                             " tokens but meta.json says " + std::to_string(expected) +
                             " (a shard is missing or stale)");
  }
}

void TokenDataset::copy(size_t start, size_t n, int32_t* out) const {
  if (start > total_ || n > total_ - start) {
    throw std::out_of_range("token range [" + std::to_string(start) + ", " + std::to_string(start + n) +
                            ") is outside the split of " + std::to_string(total_) + " tokens");
  }
  // The last shard starting at or before `start`.
  size_t s =
      static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), start) - starts_.begin()) - 1;
  for (size_t pos = start; n > 0; ++s) {
    const auto tokens = shards_[s].tokens();
    const size_t off = pos - starts_[s];
    const size_t take = std::min(n, tokens.size() - off);
    std::copy_n(tokens.data() + off, take, out);
    out += take, pos += take, n -= take;
  }
}

}  // namespace murmur

// The safetensors format (Hugging Face): u64 little-endian header length, a
// JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then
// the raw tensor bytes. Only F32 tensors are read and written here.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace murmur {

struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;  // numel(shape) floats
};

// Writes tensors back to back in the given order (the layout safetensors expects).
void write_safetensors(std::FILE* f, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Reads and validates a whole file: header size and JSON, dtypes, shapes,
// offsets inside the file and not overlapping. Errors name the file and problem.
class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::filesystem::path& path);

  struct Entry {
    std::vector<int64_t> shape;
    size_t numel = 0;
    size_t begin = 0;  // byte offset in the data section
  };
  const Entry* find(const std::string& name) const;
  // Copies a tensor's values; throws if it is missing or its shape differs.
  void read(const std::string& name, const std::vector<int64_t>& shape, float* out) const;
  const std::map<std::string, Entry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::filesystem::path path_;
  std::vector<char> bytes_;
  size_t data_start_ = 0;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

std::string shape_string(const std::vector<int64_t>& shape);  // "(768, 2304)"

}  // namespace murmur

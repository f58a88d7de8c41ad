#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace murmur {

namespace {
constexpr size_t kMaxHeaderBytes = 100u << 20;

size_t numel_of(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

void put_u64le(std::FILE* f, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  if (std::fwrite(b, 1, 8, f) != 8) throw std::runtime_error("safetensors: write failed");
}
}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + ")";
}

void write_safetensors(std::FILE* f, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const TensorRef& t : tensors) {
    const size_t bytes = numel_of(t.shape) * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  put_u64le(f, h.size());
  if (std::fwrite(h.data(), 1, h.size(), f) != h.size())
    throw std::runtime_error("safetensors: write failed");
  for (const TensorRef& t : tensors) {
    const size_t n = numel_of(t.shape);
    if (std::fwrite(t.data, sizeof(float), n, f) != n) throw std::runtime_error("safetensors: write failed");
  }
}

SafetensorsReader::SafetensorsReader(const std::filesystem::path& path) : path_(path) {
  const std::string where = "'" + path.string() + "'";
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + where);
  const auto size = static_cast<size_t>(in.tellg());
  if (size < 8)
    throw std::runtime_error(where + " is not a safetensors file (only " + std::to_string(size) + " bytes)");
  bytes_.resize(size);
  in.seekg(0);
  if (!in.read(bytes_.data(), static_cast<std::streamsize>(size)))
    throw std::runtime_error("cannot read " + where);
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<uint64_t>(static_cast<unsigned char>(bytes_[i])) << (8 * i);
  if (hlen > kMaxHeaderBytes || hlen > size - 8)
    throw std::runtime_error(where + ": header length " + std::to_string(hlen) +
                             " exceeds the file (truncated or not safetensors)");
  data_start_ = 8 + hlen;
  const size_t data_bytes = size - data_start_;
  nlohmann::json header;
  try {
    header =
        nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + static_cast<std::ptrdiff_t>(data_start_));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(where + ": malformed safetensors header: " + e.what());
  }
  if (!header.is_object()) throw std::runtime_error(where + ": safetensors header is not a JSON object");
  std::vector<std::pair<size_t, size_t>> spans;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) throw std::runtime_error(where + ": __metadata__ is not an object");
      for (const auto& [k, s] : v.items())
        if (s.is_string()) metadata_[k] = s.get<std::string>();
      continue;
    }
    const std::string what = where + " tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw std::runtime_error(what + ": missing dtype/shape/data_offsets");
    if (v["dtype"] != "F32")
      throw std::runtime_error(what + ": dtype " + v["dtype"].dump() + " is not supported (F32 only)");
    Entry e;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) throw std::runtime_error(what + ": bad shape " + v["shape"].dump());
      e.shape.push_back(d.get<int64_t>());
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw std::runtime_error(what + ": bad data_offsets");
    const auto b = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    e.numel = numel_of(e.shape);
    if (b > end || end > data_bytes || end - b != e.numel * sizeof(float))
      throw std::runtime_error(what + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(end) +
                               ") do not match shape " + shape_string(e.shape) + " inside " +
                               std::to_string(data_bytes) + " data bytes (truncated file?)");
    e.begin = b;
    spans.emplace_back(b, end);
    entries_[name] = std::move(e);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) throw std::runtime_error(where + ": tensors overlap");
}

const SafetensorsReader::Entry* SafetensorsReader::find(const std::string& name) const {
  const auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

void SafetensorsReader::read(const std::string& name, const std::vector<int64_t>& shape, float* out) const {
  const Entry* e = find(name);
  if (!e) throw std::runtime_error("'" + path_.string() + "' has no tensor '" + name + "'");
  if (e->shape != shape)
    throw std::runtime_error("'" + path_.string() + "' tensor '" + name + "' has shape " +
                             shape_string(e->shape) + ", expected " + shape_string(shape));
  std::memcpy(out, bytes_.data() + data_start_ + e->begin, e->numel * sizeof(float));
}

}  // namespace murmur

#include "model/checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <stdexcept>

#include "model/atomic_file.h"
#include "model/safetensors.h"

namespace murmur {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kManifest = "manifest.json";
constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kConfigFile = "config.json";
constexpr int kFormatVersion = 1;

// The stored shape of a tensor: the embedding drops the vocabulary padding.
std::vector<int64_t> stored_shape(const TensorInfo& t, const ModelConfig& cfg) {
  if (t.name == "transformer.wte.weight") return {cfg.vocab_size, cfg.n_embd};
  return t.shape;
}

json parse_json_file(const fs::path& p) {
  try {
    return json::parse(read_text_file(p));
  } catch (const json::exception& e) {
    throw std::runtime_error("'" + p.string() + "' is not valid JSON: " + e.what());
  }
}

bool plain_file_name(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

bool is_standard_file(const std::string& name) {
  return name == kConfigFile || name == kModelFile || name == kOptimizerFile || name == kStateFile ||
         name == kManifest;
}

// Returns the manifest once every file it lists matches its size and digest.
json verify_manifest(const fs::path& dir) {
  json manifest = parse_json_file(dir / kManifest);
  if (!manifest.is_object() || manifest.value("format", "") != "murmur-checkpoint" ||
      !manifest.contains("files") || !manifest["files"].is_object())
    throw std::runtime_error("'" + (dir / kManifest).string() + "' is not a Murmur checkpoint manifest");
  if (manifest.value("version", 0) != kFormatVersion)
    throw std::runtime_error("checkpoint '" + dir.string() + "' has format version " +
                             manifest.value("version", json(0)).dump() + "; this build reads version " +
                             std::to_string(kFormatVersion));
  for (const auto& [name, info] : manifest.at("files").items()) {
    const fs::path p = dir / name;
    if (!fs::exists(p)) throw std::runtime_error("checkpoint file '" + p.string() + "' is missing");
    if (!info.is_object() || !info.contains("bytes") || !info.contains("sha256"))
      throw std::runtime_error("'" + (dir / kManifest).string() + "': bad entry for " + name);
    if (fs::file_size(p) != info["bytes"].get<uint64_t>())
      throw std::runtime_error("checkpoint file '" + p.string() + "' has " +
                               std::to_string(fs::file_size(p)) + " bytes, the manifest says " +
                               info["bytes"].dump() + " (truncated or modified)");
    if (sha256_file(p) != info["sha256"].get<std::string>())
      throw std::runtime_error("checkpoint file '" + p.string() + "' fails its SHA-256 check (corrupt)");
  }
  return manifest;
}

}  // namespace

json hf_config_json(const ModelConfig& cfg) {
  json j = {{"architectures", {"GPT2LMHeadModel"}},
            {"model_type", "gpt2"},
            {"n_layer", cfg.n_layer},
            {"n_head", cfg.n_head},
            {"n_embd", cfg.n_embd},
            {"n_positions", cfg.n_ctx},
            {"n_ctx", cfg.n_ctx},
            {"vocab_size", cfg.vocab_size},
            {"n_inner", nullptr},
            {"activation_function", "gelu_new"},
            {"layer_norm_epsilon", 1e-5},
            {"initializer_range", 0.02},
            {"resid_pdrop", 0.0},
            {"embd_pdrop", 0.0},
            {"attn_pdrop", 0.0},
            {"scale_attn_weights", true},
            {"tie_word_embeddings", true},
            {"torch_dtype", "float32"},
            {"murmur_padded_vocab", cfg.padded_vocab}};
  if (cfg.vocab_size == 50257) {
    j["bos_token_id"] = 50256;
    j["eos_token_id"] = 50256;
  }
  return j;
}

ModelConfig config_from_hf_json(const json& j) {
  auto field = [&](const char* name) {
    if (!j.contains(name) || !j[name].is_number_integer())
      throw std::runtime_error(std::string("config.json: missing or non-integer field '") + name + "'");
    return j[name].get<int>();
  };
  if (j.contains("model_type") && j["model_type"] != "gpt2")
    throw std::runtime_error("config.json: model_type " + j["model_type"].dump() + " is not gpt2");
  ModelConfig c;
  c.n_layer = field("n_layer");
  c.n_head = field("n_head");
  c.n_embd = field("n_embd");
  c.n_ctx = field("n_positions");
  c.vocab_size = field("vocab_size");
  try {
    c.finalize();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(std::string("config.json: ") + e.what());
  }
  return c;
}

void save_checkpoint(const fs::path& dir, const ModelConfig& cfg, const ParamLayout& layout,
                     std::span<const float> params, std::span<const float> m, std::span<const float> v,
                     const json& state, const CheckpointExtras& extras) {
  if (params.size() != layout.total() || m.size() != layout.total() || v.size() != layout.total())
    throw std::invalid_argument("save_checkpoint: buffer sizes do not match the layout");
  for (const auto& [name, bytes] : extras)
    if (!plain_file_name(name) || is_standard_file(name))
      throw std::invalid_argument("save_checkpoint: bad extra file name '" + name + "'");
  const fs::path tmp = dir.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  write_text_atomic(tmp / kConfigFile, hf_config_json(cfg).dump(2) + "\n");
  std::vector<TensorRef> model;
  for (const TensorInfo& t : layout.tensors())
    model.push_back({t.name, stored_shape(t, cfg), params.data() + t.offset});
  write_file_atomic(tmp / kModelFile, [&](std::FILE* f) { write_safetensors(f, model, {{"format", "pt"}}); });
  const auto total = static_cast<int64_t>(layout.total());
  write_file_atomic(tmp / kOptimizerFile, [&](std::FILE* f) {
    write_safetensors(f, {{"exp_avg", {total}, m.data()}, {"exp_avg_sq", {total}, v.data()}});
  });
  write_text_atomic(tmp / kStateFile, state.dump(2) + "\n");
  for (const auto& [name, bytes] : extras)
    write_text_atomic(tmp / name,
                      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));

  json files = json::object();
  std::vector<std::string> names = {kConfigFile, kModelFile, kOptimizerFile, kStateFile};
  for (const auto& [name, bytes] : extras) names.push_back(name);
  for (const std::string& name : names)
    files[name] = {{"bytes", fs::file_size(tmp / name)}, {"sha256", sha256_file(tmp / name)}};
  write_text_atomic(
      tmp / kManifest,
      json{{"format", "murmur-checkpoint"}, {"version", kFormatVersion}, {"files", files}}.dump(2));

  // Replace an existing directory of the same name without a moment where neither exists complete.
  const fs::path old = dir.string() + ".old";
  fs::remove_all(old);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fsync_dir(dir.parent_path());
  fs::remove_all(old);
}

fs::path resolve_checkpoint(const fs::path& path) {
  if (!fs::exists(path)) throw std::runtime_error("checkpoint '" + path.string() + "' does not exist");
  const bool is_ckpt = fs::exists(path / kModelFile) || fs::exists(path / kManifest);
  if (fs::is_directory(path) && !is_ckpt && fs::exists(path / "latest")) {
    std::string name = read_text_file(path / "latest", 4096);
    name.erase(name.find_last_not_of(" \n\r\t") + 1);
    if (name.empty() || name.find('/') != std::string::npos)
      throw std::runtime_error("'" + (path / "latest").string() + "' does not name a checkpoint");
    return path / name;
  }
  if (!fs::is_directory(path) || !is_ckpt)
    throw std::runtime_error("'" + path.string() + "' is not a checkpoint directory (no " + kModelFile +
                             " and no 'latest' file)");
  return path;
}

CheckpointData load_checkpoint(const fs::path& path, bool need_optimizer) {
  const fs::path dir = resolve_checkpoint(path);
  const bool murmur_ckpt = fs::exists(dir / kManifest);
  json manifest;
  if (murmur_ckpt)
    manifest = verify_manifest(dir);
  else if (need_optimizer)
    throw std::runtime_error("'" + dir.string() + "' has no " + kManifest +
                             ": not a resumable Murmur checkpoint");
  if (!fs::exists(dir / kConfigFile))
    throw std::runtime_error("checkpoint '" + dir.string() + "' has no config.json");

  CheckpointData ck;
  ck.cfg = config_from_hf_json(parse_json_file(dir / kConfigFile));
  const ParamLayout layout = gpt2_layout(ck.cfg);
  ck.params.assign(layout.total(), 0.0f);
  const SafetensorsReader model(dir / kModelFile);
  for (const TensorInfo& t : layout.tensors()) {
    // Official HF GPT-2 files name tensors without the "transformer." prefix.
    std::string name = t.name;
    if (!model.find(name) && name.starts_with("transformer.")) name = name.substr(12);
    if (!model.find(name)) name = t.name;  // report the canonical name when missing
    model.read(name, stored_shape(t, ck.cfg), ck.params.data() + t.offset);
  }
  if (murmur_ckpt) {
    ck.state = parse_json_file(dir / kStateFile);
    // Sidecars beyond the standard files: the manifest listed and verified them.
    for (const auto& [name, info] : manifest.at("files").items()) {
      if (is_standard_file(name)) continue;
      if (!plain_file_name(name))
        throw std::runtime_error("'" + (dir / kManifest).string() + "' lists a bad file name '" + name + "'");
      const std::string text = read_text_file(dir / name, size_t{16} << 30);
      ck.extras[name].assign(text.begin(), text.end());
    }
  }
  if (need_optimizer) {
    const SafetensorsReader opt(dir / kOptimizerFile);
    const std::vector<int64_t> shape{static_cast<int64_t>(layout.total())};
    ck.m.resize(layout.total());
    ck.v.resize(layout.total());
    opt.read("exp_avg", shape, ck.m.data());
    opt.read("exp_avg_sq", shape, ck.v.data());
  }
  return ck;
}

fs::path checkpoint_path(const fs::path& run_dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "ckpt-%08lld", static_cast<long long>(step));
  return run_dir / name;
}

void publish_checkpoint(const fs::path& run_dir, const fs::path& ckpt, int keep_last) {
  write_text_atomic(run_dir / "latest", ckpt.filename().string() + "\n");
  if (keep_last <= 0) return;
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(run_dir)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.starts_with("ckpt-") && n.find('.') == std::string::npos)
      all.push_back(e.path());
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i)
    if (all[i].filename() != ckpt.filename()) fs::remove_all(all[i]);
}

}  // namespace murmur

// Checkpoints. A checkpoint directory is a Hugging Face GPT-2 model directory
// (config.json + model.safetensors with HF names and shapes, loadable by
// transformers.GPT2LMHeadModel.from_pretrained) plus Murmur's sidecar:
//   optimizer.safetensors  AdamW moments "exp_avg"/"exp_avg_sq", flat, in layout order
//   trainer_state.json     step, data position, seeds, hyper-parameters (owned by the trainer)
//   manifest.json          size and SHA-256 of every file above, written last
// The directory is written under a temporary name and renamed into place, so a
// crash never leaves a partial checkpoint under the final name.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/layout.h"

namespace murmur {

// Extra sidecar files (e.g. the gossip algorithm's state), by file name.
using CheckpointExtras = std::map<std::string, std::vector<uint8_t>>;

struct CheckpointData {
  ModelConfig cfg;
  std::vector<float> params;  // layout total; padding zero
  std::vector<float> m, v;    // empty unless loaded with the optimizer state
  nlohmann::json state;       // trainer_state.json, or null for a foreign model directory
  CheckpointExtras extras;    // every other file the manifest lists, verified by its hash
};

// `extras` are written beside the standard files and covered by the manifest;
// their names must be plain file names ([A-Za-z0-9_.-]).
void save_checkpoint(const std::filesystem::path& dir, const ModelConfig& cfg, const ParamLayout& layout,
                     std::span<const float> params, std::span<const float> m, std::span<const float> v,
                     const nlohmann::json& state, const CheckpointExtras& extras = {});

// `path` is a checkpoint directory or a run directory (then its `latest` one).
// Verifies the manifest when there is one (a plain HF GPT-2 directory has none
// and loads as model-only). need_optimizer: the moments and trainer state must
// be present (resume). Throws std::runtime_error naming the file and problem.
CheckpointData load_checkpoint(const std::filesystem::path& path, bool need_optimizer);
std::filesystem::path resolve_checkpoint(const std::filesystem::path& path);

// Run-directory bookkeeping: ckpt-00000100/ directories and a `latest` file
// naming the newest complete one; keep_last > 0 prunes older checkpoints.
std::filesystem::path checkpoint_path(const std::filesystem::path& run_dir, int64_t step);
void publish_checkpoint(const std::filesystem::path& run_dir, const std::filesystem::path& ckpt,
                        int keep_last);

nlohmann::json hf_config_json(const ModelConfig& cfg);
ModelConfig config_from_hf_json(const nlohmann::json& j);  // throws naming the missing/invalid field

}  // namespace murmur

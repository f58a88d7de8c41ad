// The option groups every command that builds or trains a model shares, each registered in one place
// (flag, help, default, range) and composed by `train`, `eval`, `bench model`, `bench compress` and
// `node`; and the rules a training loop shares (when to stop, a diverged loss).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"
#include "model/trainer.h"

namespace murmur::run {

// A preset, optionally resized (0 keeps the preset's value).
struct ModelOptions {
  std::string preset = "small";
  int n_layer = 0, n_head = 0, n_embd = 0, n_ctx = 0;
  ModelConfig config() const;  // throws std::invalid_argument for an unknown preset or a bad shape
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ModelOptions, preset, n_layer, n_head, n_embd, n_ctx)

// Where the model runs. threads: 0 = all cores.
struct DeviceOptions {
  std::string kind = "cpu";
  int threads = 0;
};

// Sequences per step and tokens per sequence (0 = the model's n_ctx).
struct BatchOptions {
  int batch = 8, context = 0;
  int context_for(const ModelConfig& cfg) const { return context > 0 ? context : cfg.n_ctx; }
};

// Local training: the optimiser, its schedule and the run's length. The same flags for `train` and for
// every peer of `node`.
struct TrainingOptions {
  int64_t steps = 1000;  // optimizer steps of the whole run
  int grad_accum = 1;
  float lr = 1e-3f, min_lr_frac = 0.1f, weight_decay = 0.1f, beta1 = 0.9f, beta2 = 0.95f, clip = 1.0f;
  int64_t warmup = -1;  // -1: steps / 20
  uint64_t seed = 1337;
  double max_seconds = 0;  // stop (and save) after this long; 0 = no limit
  // model/trainer.h's options for this batch (peer: the data stream's index).
  TrainOptions trainer(const BatchOptions& b, int context, uint32_t peer = 0) const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrainingOptions, steps, grad_accum, lr, min_lr_frac, weight_decay, beta1,
                                   beta2, clip, warmup, seed)

// Each adds its flags to `cmd` under --help's `group`, with the struct's values as defaults.
void add_model_options(CLI::App& cmd, ModelOptions& m, const std::string& group, bool resizable = true);
void add_device_options(CLI::App& cmd, DeviceOptions& d, const std::string& group);
void add_batch_options(CLI::App& cmd, BatchOptions& b, const std::string& group);
void add_training_options(CLI::App& cmd, TrainingOptions& t, const std::string& group);

// Why a training loop stops before its last step: Ctrl-C, or the time limit; empty while it goes on.
class StopRule {
 public:
  explicit StopRule(double max_seconds) : max_seconds_(max_seconds) {}
  std::string reason() const;
  double elapsed_s() const;

 private:
  double max_seconds_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// A step's loss that is NaN or Inf ends the run: std::runtime_error naming the step.
void check_loss(const StepStats& s);

}  // namespace murmur::run

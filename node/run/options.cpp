#include "node/run/options.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "node/run/interrupt.h"

namespace murmur::run {

ModelConfig ModelOptions::config() const {
  ModelConfig cfg = preset_config(preset);
  if (n_layer) cfg.n_layer = n_layer;
  if (n_head) cfg.n_head = n_head;
  if (n_embd) cfg.n_embd = n_embd;
  if (n_ctx) cfg.n_ctx = n_ctx;
  cfg.finalize();
  return cfg;
}

TrainOptions TrainingOptions::trainer(const BatchOptions& b, int context, uint32_t peer) const {
  TrainOptions o;
  o.batch = b.batch;
  o.context = context;
  o.grad_accum = grad_accum;
  o.lr = {lr, min_lr_frac, warmup >= 0 ? warmup : std::max<int64_t>(1, steps / 20), steps};
  o.adamw = {beta1, beta2, 1e-8f, weight_decay};
  o.clip = clip;
  o.seed = seed;
  o.peer = peer;
  return o;
}

void add_model_options(CLI::App& cmd, ModelOptions& m, const std::string& group, bool resizable) {
  std::string presets;
  for (const auto& n : preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  cmd.add_option("--preset", m.preset, "Model preset: " + presets)->capture_default_str()->group(group);
  if (!resizable) return;
  cmd.add_option("--n-layer", m.n_layer, "Override the preset's layer count")
      ->check(CLI::NonNegativeNumber)
      ->group(group);
  cmd.add_option("--n-head", m.n_head, "Override the preset's attention heads")
      ->check(CLI::NonNegativeNumber)
      ->group(group);
  cmd.add_option("--n-embd", m.n_embd, "Override the preset's width")
      ->check(CLI::NonNegativeNumber)
      ->group(group);
  cmd.add_option("--n-ctx", m.n_ctx, "Override the preset's maximum context")
      ->check(CLI::NonNegativeNumber)
      ->group(group);
}

void add_device_options(CLI::App& cmd, DeviceOptions& d, const std::string& group) {
  cmd.add_option("--device", d.kind, "cpu, or cuda (needs a CUDA build and a GPU)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->group(group);
  cmd.add_option("--threads", d.threads, "CPU threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024))
      ->group(group);
}

void add_batch_options(CLI::App& cmd, BatchOptions& b, const std::string& group) {
  cmd.add_option("--batch", b.batch, "Sequences per step (per micro-batch with --grad-accum)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16))
      ->group(group);
  cmd.add_option("--context", b.context, "Tokens per sequence (0 = the model's n_ctx)")
      ->check(CLI::Range(0, 1 << 20))
      ->group(group);
}

void add_training_options(CLI::App& cmd, TrainingOptions& t, const std::string& group) {
  cmd.add_option("--steps", t.steps, "Optimizer steps of the whole run")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40))
      ->group(group);
  cmd.add_option("--grad-accum", t.grad_accum, "Micro-batches per optimizer step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16))
      ->group(group);
  cmd.add_option("--lr", t.lr, "Peak learning rate (AdamW)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0))
      ->group(group);
  cmd.add_option("--warmup", t.warmup, "Linear warm-up steps (-1 = steps/20)")
      ->capture_default_str()
      ->group(group);
  cmd.add_option("--min-lr-frac", t.min_lr_frac, "Final LR as a fraction of the peak (cosine decay)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->group(group);
  cmd.add_option("--weight-decay", t.weight_decay, "AdamW decoupled weight decay")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0))
      ->group(group);
  cmd.add_option("--beta1", t.beta1, "AdamW beta1")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999999))
      ->group(group);
  cmd.add_option("--beta2", t.beta2, "AdamW beta2")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999999))
      ->group(group);
  cmd.add_option("--clip", t.clip, "Max global gradient norm (0 = no clipping)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6))
      ->group(group);
  cmd.add_option("--seed", t.seed,
                 "Seed of the initialisation and the data order (one per run: every peer alike)")
      ->capture_default_str()
      ->group(group);
  cmd.add_option("--max-seconds", t.max_seconds, "Stop (and save) after this many seconds (0 = no limit)")
      ->check(CLI::NonNegativeNumber)
      ->group(group);
}

double StopRule::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string StopRule::reason() const {
  if (interrupted()) return "interrupted";
  if (max_seconds_ > 0 && elapsed_s() >= max_seconds_) return "time limit";
  return {};
}

void check_loss(const StepStats& s) {
  if (!std::isfinite(s.loss))
    throw std::runtime_error("loss became " + std::to_string(s.loss) + " at step " + std::to_string(s.step) +
                             "; lower --lr?");
}

}  // namespace murmur::run

// murmur train: single-node training with progress, validation, JSONL log,
// periodic/final checkpoints, resume and a clean stop on Ctrl-C.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "model/checkpoint.h"
#include "model/init.h"
#include "model/trainer.h"
#include "node/commands.h"
#include "node/interrupt.h"
#include "node/jsonl_log.h"

namespace murmur::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct TrainArgs {
  std::string preset = "small";
  std::string data, out, resume, device = "cpu";
  int64_t steps = 1000;
  int batch = 8, context = 0, threads = 0, grad_accum = 1;
  float lr = 1e-3f, min_lr_frac = 0.1f, weight_decay = 0.1f, beta1 = 0.9f, beta2 = 0.95f, clip = 1.0f;
  int64_t warmup = -1;
  uint64_t seed = 1337;
  int64_t eval_every = 200, eval_windows = 100, ckpt_every = 500, log_every = 10;
  int keep = 3;
  int n_layer = 0, n_head = 0, n_embd = 0, n_ctx = 0;  // preset overrides (0 = keep)
  double max_seconds = 0;
  int64_t stop_after = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrainArgs, preset, data, steps, batch, context, grad_accum, lr,
                                   min_lr_frac, weight_decay, beta1, beta2, clip, warmup, seed, eval_every,
                                   eval_windows, ckpt_every, log_every, keep, n_layer, n_head, n_embd, n_ctx)

// On resume, every setting not given on this command line comes from the run's saved arguments.
void inherit_saved_args(CLI::App& sub, TrainArgs& a, const json& saved) {
  json merged = a;
  for (const auto& [key, value] : saved.items()) {
    std::string flag = "--" + key;
    for (char& c : flag)
      if (c == '_') c = '-';
    const CLI::Option* opt = sub.get_option_no_throw(flag);
    if (merged.contains(key) && (!opt || opt->count() == 0)) merged[key] = value;
  }
  const std::string out = a.out, resume = a.resume, device = a.device;
  const int threads = a.threads;
  const double max_seconds = a.max_seconds;
  const int64_t stop_after = a.stop_after;
  a = merged.get<TrainArgs>();
  a.out = out, a.resume = resume, a.device = device, a.threads = threads, a.max_seconds = max_seconds;
  a.stop_after = stop_after;
}

ModelConfig model_config(const TrainArgs& a) {
  ModelConfig cfg = preset_config(a.preset);
  if (a.n_layer) cfg.n_layer = a.n_layer;
  if (a.n_head) cfg.n_head = a.n_head;
  if (a.n_embd) cfg.n_embd = a.n_embd;
  if (a.n_ctx) cfg.n_ctx = a.n_ctx;
  cfg.finalize();
  return cfg;
}

void run_train(CLI::App& sub, TrainArgs a) {
  CheckpointData ck;
  if (!a.resume.empty()) {
    ck = load_checkpoint(a.resume, /*need_optimizer=*/true);
    if (ck.state.contains("args")) inherit_saved_args(sub, a, ck.state["args"]);
  }
  if (a.data.empty())
    throw std::invalid_argument("--data is required (a directory made by `murmur data prepare`)");
  if (a.out.empty()) throw std::invalid_argument("--out is required");
  const ModelConfig cfg = a.resume.empty() ? model_config(a) : ck.cfg;
  if (a.context == 0) a.context = cfg.n_ctx;
  if (a.steps < 1) throw std::invalid_argument("--steps must be at least 1");
  if (a.warmup < 0) a.warmup = std::max<int64_t>(1, a.steps / 20);

  const TokenDataset train(a.data, "train");
  const TokenDataset val(a.data, "val");
  auto model = make_backend(parse_device(a.device), cfg, a.batch, a.context, a.threads);

  TrainOptions opt;
  opt.batch = a.batch;
  opt.context = a.context;
  opt.grad_accum = a.grad_accum;
  opt.lr = {a.lr, a.min_lr_frac, a.warmup, a.steps};
  opt.adamw = {a.beta1, a.beta2, 1e-8f, a.weight_decay};
  opt.clip = a.clip;
  opt.seed = a.seed;
  Trainer trainer(*model, train, opt);

  const ParamLayout& layout = model->layout();
  std::vector<float> params(layout.total()), m(layout.total()), v(layout.total());
  if (a.resume.empty()) {
    init_gpt2_params(params, layout, cfg, a.seed);
    model->write_params(params);
  } else {
    model->write_params(ck.params);
    model->write_moments(ck.m, ck.v);
    trainer.restore(ck.state);
    std::printf("resumed from %s at step %lld\n", resolve_checkpoint(a.resume).c_str(),
                static_cast<long long>(trainer.steps_done()));
  }

  fs::create_directories(a.out);
  JsonlLog log(fs::path(a.out) / "log.jsonl");
  auto save = [&](const char* why) {
    model->read_params(params);
    model->read_moments(m, v);
    json state = trainer.state();
    state["args"] = a;
    state["tokenizer"] = train.tokenizer();
    const fs::path dir = checkpoint_path(a.out, trainer.steps_done());
    save_checkpoint(dir, cfg, layout, params, m, v, state);
    publish_checkpoint(a.out, dir, a.keep);
    log.write(
        {{"event", "checkpoint"}, {"step", trainer.steps_done()}, {"path", dir.string()}, {"reason", why}});
    return dir;
  };
  auto val_loss = [&] {
    return evaluate(
               *model, val.size(), [&](size_t s, size_t n, int32_t* o) { val.copy(s, n, o); }, a.context,
               static_cast<size_t>(a.eval_windows))
        .loss;
  };

  const double flops_per_token = cfg.train_flops_per_token(a.context);
  std::printf("training %s (%s, %.2fM params) on %s: %lld steps of %d x %d x %d tokens, %s, %d threads\n",
              a.preset.c_str(), cfg.describe().c_str(), cfg.num_params() / 1e6, a.data.c_str(),
              static_cast<long long>(a.steps), a.batch, a.context, a.grad_accum, a.device.c_str(),
              a.threads > 0 ? a.threads : static_cast<int>(std::thread::hardware_concurrency()));
  install_interrupt_handler();
  const auto start = std::chrono::steady_clock::now();
  const int64_t first_step = trainer.steps_done();
  double window_seconds = 0;
  int64_t window_tokens = 0;
  const char* stop_reason = "finished";
  while (trainer.steps_done() < a.steps) {
    if (interrupted()) {
      stop_reason = "interrupted";
      break;
    }
    if (a.max_seconds > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= a.max_seconds) {
      stop_reason = "time limit";
      break;
    }
    if (a.stop_after > 0 && trainer.steps_done() - first_step >= a.stop_after) {
      stop_reason = "stopped (--stop-after)";
      break;
    }
    const StepStats s = trainer.step();
    if (!std::isfinite(s.loss))
      throw std::runtime_error("loss became " + std::to_string(s.loss) + " at step " +
                               std::to_string(s.step) + "; lower --lr?");
    window_seconds += s.seconds;
    window_tokens += s.tokens;
    const bool do_eval = a.eval_every > 0 && (s.step % a.eval_every == 0 || s.step == a.steps);
    if (s.step % a.log_every != 0 && !do_eval && s.step != a.steps) continue;
    const double tok_s = window_tokens / window_seconds;
    json e = {{"event", "step"},
              {"step", s.step},
              {"loss", s.loss},
              {"lr", s.lr},
              {"grad_norm", s.grad_norm},
              {"tokens_per_s", tok_s},
              {"ms_per_step", 1e3 * window_seconds * s.tokens / window_tokens},
              {"tokens", trainer.tokens_done()},
              {"gflops", tok_s * flops_per_token / 1e9}};
    std::printf(
        "step %6lld/%lld | loss %.4f | lr %.2e | norm %.3f | %.1f ms/step | %.0f tok/s | %.1f GFLOP/s",
        static_cast<long long>(s.step), static_cast<long long>(a.steps), s.loss, s.lr, s.grad_norm,
        e["ms_per_step"].get<double>(), tok_s, e["gflops"].get<double>());
    if (do_eval) {
      e["val_loss"] = val_loss();
      std::printf(" | val %.4f", e["val_loss"].get<double>());
    }
    std::printf("\n");
    std::fflush(stdout);
    log.write(e);
    window_seconds = 0;
    window_tokens = 0;
    if (a.ckpt_every > 0 && s.step % a.ckpt_every == 0 && s.step != a.steps) save("periodic");
  }
  const fs::path final_dir = save(stop_reason);
  std::printf("%s at step %lld: checkpoint %s, log %s\n", stop_reason,
              static_cast<long long>(trainer.steps_done()), final_dir.c_str(),
              (fs::path(a.out) / "log.jsonl").c_str());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* sub = app.add_subcommand("train", "Train one model replica on this machine (no peers)");
  sub->footer(
      "Settings can also come from a TOML file (--config FILE) whose keys are the flag names;\n"
      "flags on the command line win. --resume continues a run bit-identically: settings not\n"
      "given again are taken from the checkpoint. Ctrl-C stops after the current step and saves.");
  std::string config_unused;
  sub->add_option("--config", config_unused, "TOML file with flag values (keys = flag names)");
  sub->add_option(
         "--preset", args->preset,
         "Model preset: " +
             [] {
               std::string s;
               for (const auto& n : preset_names()) s += (s.empty() ? "" : ", ") + n;
               return s;
             }())
      ->capture_default_str();
  sub->add_option("--data", args->data, "Data directory from `murmur data prepare`");
  sub->add_option("--out", args->out, "Run directory: log.jsonl, ckpt-*/ checkpoints, latest");
  sub->add_option("--steps", args->steps, "Total optimizer steps of the run")->capture_default_str();
  sub->add_option("--batch", args->batch, "Sequences per micro-batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  sub->add_option("--context", args->context, "Tokens per sequence (0 = the model's n_ctx)")
      ->check(CLI::Range(0, 1 << 20));
  sub->add_option("--grad-accum", args->grad_accum, "Micro-batches per optimizer step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  sub->add_option("--threads", args->threads, "CPU threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  sub->add_option("--device", args->device, "cpu or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--lr", args->lr, "Peak learning rate")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0));
  sub->add_option("--warmup", args->warmup, "Linear warm-up steps (-1 = steps/20)")->capture_default_str();
  sub->add_option("--min-lr-frac", args->min_lr_frac, "Final LR as a fraction of the peak (cosine decay)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--weight-decay", args->weight_decay, "AdamW decoupled weight decay")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0));
  sub->add_option("--beta1", args->beta1, "AdamW beta1")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999999));
  sub->add_option("--beta2", args->beta2, "AdamW beta2")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999999));
  sub->add_option("--clip", args->clip, "Max global gradient norm (0 = no clipping)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  sub->add_option("--seed", args->seed, "Seed of the initialisation and the data order")
      ->capture_default_str();
  sub->add_option("--eval-every", args->eval_every, "Validate every N steps (0 = never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--eval-windows", args->eval_windows,
                  "Validation windows of context+1 tokens (0 = the whole split)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--ckpt-every", args->ckpt_every, "Checkpoint every N steps (0 = only at the end)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--keep", args->keep, "Checkpoints to keep (0 = all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--log-every", args->log_every, "Print and log every N steps")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-seconds", args->max_seconds,
                  "Stop (and save) after this many seconds (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--stop-after", args->stop_after,
                  "Stop (and save) after N steps of this invocation, keeping the schedule of --steps; "
                  "continue later with --resume")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--n-layer", args->n_layer, "Override the preset's layer count")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--n-head", args->n_head, "Override the preset's attention heads")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--n-embd", args->n_embd, "Override the preset's width")->check(CLI::NonNegativeNumber);
  sub->add_option("--n-ctx", args->n_ctx, "Override the preset's maximum context")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--resume", args->resume,
                  "Checkpoint directory, or a run directory (its latest checkpoint)");
  sub->callback([sub, args] { run_train(*sub, *args); });
}

}  // namespace murmur::cli

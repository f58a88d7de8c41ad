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
#include "node/cli/commands.h"
#include "node/run/interrupt.h"
#include "node/run/jsonl_log.h"
#include "node/run/options.h"

namespace murmur::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct TrainArgs {
  std::string data, out, resume;
  run::ModelOptions model;
  run::DeviceOptions device;
  run::BatchOptions batch;
  run::TrainingOptions train;
  int64_t eval_every = 200, eval_windows = 100, ckpt_every = 500, log_every = 10;
  int keep = 3;
  int64_t stop_after = 0;
};

// What a checkpoint keeps of the arguments (flat, keys = flag names): not the device, the paths of this
// invocation or its stopping rules.
void to_json(json& j, const TrainArgs& a) {
  j = a.model;
  j.update(json(a.train));
  j.erase("max_seconds");
  j.update({{"data", a.data},
            {"batch", a.batch.batch},
            {"context", a.batch.context},
            {"eval_every", a.eval_every},
            {"eval_windows", a.eval_windows},
            {"ckpt_every", a.ckpt_every},
            {"log_every", a.log_every},
            {"keep", a.keep}});
}
void from_json(const json& j, TrainArgs& a) {
  j.get_to(a.model);
  const double max_seconds = a.train.max_seconds;
  j.get_to(a.train);
  a.train.max_seconds = max_seconds;
  j.at("data").get_to(a.data);
  j.at("batch").get_to(a.batch.batch);
  j.at("context").get_to(a.batch.context);
  j.at("eval_every").get_to(a.eval_every);
  j.at("eval_windows").get_to(a.eval_windows);
  j.at("ckpt_every").get_to(a.ckpt_every);
  j.at("log_every").get_to(a.log_every);
  j.at("keep").get_to(a.keep);
}

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
  merged.get_to(a);
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
  const ModelConfig cfg = a.resume.empty() ? a.model.config() : ck.cfg;
  const int context = a.batch.context_for(cfg);
  const int64_t steps = a.train.steps;

  const TokenDataset train(a.data, "train");
  const TokenDataset val(a.data, "val");
  auto model = make_backend(parse_device(a.device.kind), cfg, a.batch.batch, context, a.device.threads);
  Trainer trainer(*model, train, a.train.trainer(a.batch, context));

  const ParamLayout& layout = model->layout();
  std::vector<float> params(layout.total()), m(layout.total()), v(layout.total());
  if (a.resume.empty()) {
    init_gpt2_params(params, layout, cfg, a.train.seed);
    model->write_params(params);
  } else {
    model->write_params(ck.params);
    model->write_moments(ck.m, ck.v);
    trainer.restore(ck.state);
    std::printf("resumed from %s at step %lld\n", resolve_checkpoint(a.resume).c_str(),
                static_cast<long long>(trainer.steps_done()));
  }

  fs::create_directories(a.out);
  run::JsonlLog log(fs::path(a.out) / "log.jsonl");
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
               *model, val.size(), [&](size_t s, size_t n, int32_t* o) { val.copy(s, n, o); }, context,
               static_cast<size_t>(a.eval_windows))
        .loss;
  };

  const double flops_per_token = cfg.train_flops_per_token(context);
  std::printf(
      "training %s (%s, %.2fM params) on %s: %lld steps of %d x %d x %d tokens, %s, %d threads\n",
      a.model.preset.c_str(), cfg.describe().c_str(), cfg.num_params() / 1e6, a.data.c_str(),
      static_cast<long long>(steps), a.batch.batch, context, a.train.grad_accum, a.device.kind.c_str(),
      a.device.threads > 0 ? a.device.threads : static_cast<int>(std::thread::hardware_concurrency()));
  run::install_interrupt_handler();
  const run::StopRule stop(a.train.max_seconds);
  const int64_t first_step = trainer.steps_done();
  double window_seconds = 0;
  int64_t window_tokens = 0;
  std::string stop_reason = "finished";
  while (trainer.steps_done() < steps) {
    if (std::string why = stop.reason(); !why.empty()) {
      stop_reason = why;
      break;
    }
    if (a.stop_after > 0 && trainer.steps_done() - first_step >= a.stop_after) {
      stop_reason = "stopped (--stop-after)";
      break;
    }
    const StepStats s = trainer.step();
    run::check_loss(s);
    window_seconds += s.seconds;
    window_tokens += s.tokens;
    const bool do_eval = a.eval_every > 0 && (s.step % a.eval_every == 0 || s.step == steps);
    if (s.step % a.log_every != 0 && !do_eval && s.step != steps) continue;
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
        static_cast<long long>(s.step), static_cast<long long>(steps), s.loss, s.lr, s.grad_norm,
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
    if (a.ckpt_every > 0 && s.step % a.ckpt_every == 0 && s.step != steps) save("periodic");
  }
  const fs::path final_dir = save(stop_reason.c_str());
  std::printf("%s at step %lld: checkpoint %s, log %s\n", stop_reason.c_str(),
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
  const std::string out = "Run", model = "Model and device", training = "Training";
  sub->add_option("--data", args->data, "Data directory from `murmur data prepare`")->group(out);
  sub->add_option("--out", args->out, "Run directory: log.jsonl, ckpt-*/ checkpoints, latest")->group(out);
  sub->add_option("--resume", args->resume,
                  "Checkpoint directory, or a run directory (its latest checkpoint)")
      ->group(out);
  run::add_model_options(*sub, args->model, model);
  run::add_device_options(*sub, args->device, model);
  run::add_batch_options(*sub, args->batch, training);
  run::add_training_options(*sub, args->train, training);
  sub->add_option("--eval-every", args->eval_every, "Validate every N steps (0 = never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(out);
  sub->add_option("--eval-windows", args->eval_windows,
                  "Validation windows of context+1 tokens (0 = the whole split)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(out);
  sub->add_option("--ckpt-every", args->ckpt_every, "Checkpoint every N steps (0 = only at the end)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(out);
  sub->add_option("--keep", args->keep, "Checkpoints to keep (0 = all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(out);
  sub->add_option("--log-every", args->log_every, "Print and log every N steps")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(out);
  sub->add_option("--stop-after", args->stop_after,
                  "Stop (and save) after N steps of this invocation, keeping the schedule of --steps; "
                  "continue later with --resume")
      ->check(CLI::NonNegativeNumber)
      ->group(out);
  sub->callback([sub, args] { run_train(*sub, *args); });
}

}  // namespace murmur::cli

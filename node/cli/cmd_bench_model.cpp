// murmur bench model: forward+backward+AdamW throughput on random tokens.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "model/adamw.h"
#include "model/init.h"
#include "node/cli/commands.h"
#include "node/run/options.h"

namespace murmur::cli {

namespace {

struct BenchArgs {
  run::ModelOptions model;
  run::DeviceOptions device;
  run::BatchOptions batch;
  int steps = 10, warmup = 2;
  bool json = false;
};

void run_bench(const BenchArgs& a) {
  const ModelConfig cfg = a.model.config();
  const int T = a.batch.context_for(cfg);
  auto model = make_backend(parse_device(a.device.kind), cfg, a.batch.batch, T, a.device.threads);
  std::vector<float> params(model->layout().total());
  init_gpt2_params(params, model->layout(), cfg, 1);
  model->write_params(params);
  SplitMix64 rng(7);
  std::vector<int32_t> inputs(static_cast<size_t>(a.batch.batch) * T), targets(inputs.size());
  for (auto& t : inputs) t = static_cast<int32_t>(rng.next() % cfg.vocab_size);
  for (auto& t : targets) t = static_cast<int32_t>(rng.next() % cfg.vocab_size);

  const AdamWConfig adamw;
  std::vector<double> ms;
  for (int i = 0; i < a.warmup + a.steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    model->zero_grad();
    model->forward(inputs.data(), targets.data(), a.batch.batch, T);
    model->backward(1.0f / static_cast<float>(inputs.size()));
    model->adamw_step(adamw, 1e-4f, clip_coefficient(model->grad_norm(), 1.0f), i + 1);
    const double dt =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= a.warmup) ms.push_back(dt);
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  const double tok_s = static_cast<double>(inputs.size()) / (median / 1e3);
  const int threads =
      a.device.threads > 0 ? a.device.threads : static_cast<int>(std::thread::hardware_concurrency());
  const nlohmann::json j = {{"impl", "murmur"},
                            {"preset", a.model.preset},
                            {"device", a.device.kind},
                            {"batch", a.batch.batch},
                            {"context", T},
                            {"threads", threads},
                            {"params", cfg.num_params()},
                            {"steps", a.steps},
                            {"ms_per_step", median},
                            {"ms_per_step_min", ms.front()},
                            {"ms_per_step_max", ms.back()},
                            {"tokens_per_s", tok_s},
                            {"gflops", tok_s * cfg.train_flops_per_token(T) / 1e9}};
  if (a.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s on %s: %.1f ms/step (median of %d), %.0f tokens/s, %.1f GFLOP/s\n",
                a.model.preset.c_str(), a.device.kind.c_str(), median, a.steps, tok_s,
                j["gflops"].get<double>());
  }
}

}  // namespace

void add_bench_model(CLI::App& bench) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = bench.add_subcommand("model", "Training-step throughput (forward + backward + AdamW)");
  run::add_model_options(*sub, a->model, "Model and device");
  run::add_device_options(*sub, a->device, "Model and device");
  run::add_batch_options(*sub, a->batch, "Model and device");
  sub->add_option("--steps", a->steps, "Timed steps (the median is reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  sub->add_option("--warmup", a->warmup, "Untimed steps first")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  sub->add_flag("--json", a->json, "Print one JSON object");
  sub->callback([a] { run_bench(*a); });
}

}  // namespace murmur::cli

// murmur eval: mean next-token loss of a checkpoint over a data split or a text file.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "model/atomic_file.h"
#include "model/checkpoint.h"
#include "model/tokenizer.h"
#include "model/trainer.h"
#include "node/cli/commands.h"
#include "node/run/options.h"

namespace murmur::cli {

namespace {

struct EvalArgs {
  std::string checkpoint, data, text, split = "val", tokenizer, bpe_dir;
  run::DeviceOptions device;
  run::BatchOptions batch;  // windows per forward pass, window length (0 = the model's n_positions)
  size_t max_windows = 0;
  bool json = false;
};

void run_eval(const EvalArgs& a) {
  const CheckpointData ck = load_checkpoint(a.checkpoint, /*need_optimizer=*/false);
  const int T = a.batch.context_for(ck.cfg);
  if (T > ck.cfg.n_ctx)
    throw std::invalid_argument("--context " + std::to_string(T) + " exceeds the model's n_positions " +
                                std::to_string(ck.cfg.n_ctx));
  auto model = make_backend(parse_device(a.device.kind), ck.cfg, a.batch.batch, T, a.device.threads);
  model->write_params(ck.params);

  EvalResult r;
  if (!a.data.empty()) {
    const TokenDataset ds(a.data, a.split);
    if (ds.vocab_size() > ck.cfg.vocab_size)
      throw std::invalid_argument("data vocabulary " + std::to_string(ds.vocab_size()) +
                                  " is larger than the model's " + std::to_string(ck.cfg.vocab_size));
    r = evaluate(
        *model, ds.size(), [&](size_t s, size_t n, int32_t* o) { ds.copy(s, n, o); }, T, a.max_windows);
  } else {
    // The default tokenizer follows the vocabulary: 256 is byte-level (id = byte value).
    const std::string name = !a.tokenizer.empty() ? a.tokenizer : ck.cfg.vocab_size == 256 ? "byte" : "gpt2";
    const auto tok = make_tokenizer(name, a.bpe_dir);
    if (tok->vocab_size() > ck.cfg.vocab_size)
      throw std::invalid_argument("tokenizer '" + name + "' has a larger vocabulary than the model");
    const std::vector<uint16_t> ids = tok->encode(read_text_file(a.text, size_t{4} << 30));
    r = evaluate(
        *model, ids.size(), [&](size_t s, size_t n, int32_t* o) { std::copy_n(ids.begin() + s, n, o); }, T,
        a.max_windows);
  }
  if (a.json) {
    std::printf("%s\n",
                nlohmann::json{{"loss", r.loss}, {"tokens", r.tokens}, {"context", T}}.dump().c_str());
  } else {
    std::printf("loss %.6f nats/token (%.4f bits) over %zu tokens, context %d\n", r.loss,
                r.loss / std::log(2.0), r.tokens, T);
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand("eval", "Mean next-token cross-entropy of a checkpoint");
  sub->footer(
      "The text is cut into consecutive non-overlapping windows of context+1 tokens (a last\n"
      "partial window is dropped); each window predicts its last `context` tokens.");
  sub->add_option("--checkpoint", a->checkpoint, "Checkpoint directory (or a run directory: its latest)")
      ->required();
  auto* data = sub->add_option("--data", a->data, "Data directory from `murmur data prepare`");
  auto* text = sub->add_option("--text", a->text, "A UTF-8 text file, tokenized here");
  data->excludes(text);
  sub->add_option("--split", a->split, "Split of --data")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "val"}));
  sub->add_option("--tokenizer", a->tokenizer,
                  "Tokenizer for --text (default: byte for vocab 256, else gpt2)")
      ->check(CLI::IsMember({"byte", "gpt2"}));
  sub->add_option("--bpe-dir", a->bpe_dir, "Directory with encoder.json and vocab.bpe (gpt2 tokenizer)");
  run::add_batch_options(*sub, a->batch, "Model and device");
  sub->add_option("--max-windows", a->max_windows, "Evaluate at most this many windows (0 = all)");
  run::add_device_options(*sub, a->device, "Model and device");
  sub->add_flag("--json", a->json, "Print one JSON object {\"loss\", \"tokens\", \"context\"}");
  sub->callback([a] {
    if (a->data.empty() == a->text.empty())
      throw std::invalid_argument("give exactly one of --data or --text");
    run_eval(*a);
  });
}

}  // namespace murmur::cli

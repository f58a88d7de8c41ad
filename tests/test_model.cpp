// Unit tests of the model engine's pieces: config, layout, schedule, clipping,
// safetensors and checkpoint validation, and bit-identical resume.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>

#include "model/adamw.h"
#include "model/atomic_file.h"
#include "model/checkpoint.h"
#include "model/init.h"
#include "model/safetensors.h"
#include "model/trainer.h"
#include "tests/test_util.h"

namespace murmur {
namespace {

using test::TempDir;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Config, PresetsAreValidAndPadded) {
  for (const auto& name : preset_names()) EXPECT_NO_THROW(preset_config(name)) << name;
  const ModelConfig g = preset_config("gpt2-124m");
  EXPECT_EQ(g.padded_vocab, 50304);
  EXPECT_EQ(g.num_params(), 124439808u);  // GPT-2 small with tied embeddings
  EXPECT_NE(error_of([] { preset_config("huge"); }).find("known: tiny"), std::string::npos);
}

TEST(Config, HeadsMustDivideWidth) {
  ModelConfig c = preset_config("tiny");
  c.n_head = 3;
  EXPECT_NE(error_of([&] { c.finalize(); }).find("n_head (3) must divide n_embd (32)"), std::string::npos);
}

TEST(Layout, AlignedHfNamesAndShapes) {
  const ModelConfig c = preset_config("tiny");
  const ParamLayout l = gpt2_layout(c);
  EXPECT_EQ(l.tensors().size(), 2u + 12u * c.n_layer + 2u);
  for (const TensorInfo& t : l.tensors()) EXPECT_EQ(t.offset % ParamLayout::kAlignFloats, 0u) << t.name;
  EXPECT_EQ(l.at("transformer.h.1.attn.c_attn.weight").shape, (std::vector<int64_t>{32, 96}));
  EXPECT_EQ(l.at("transformer.h.0.mlp.c_proj.weight").shape, (std::vector<int64_t>{128, 32}));
  EXPECT_TRUE(l.at("transformer.wte.weight").decay);
  EXPECT_FALSE(l.at("transformer.ln_f.bias").decay);
  EXPECT_THROW(l.at("nope"), std::out_of_range);
}

TEST(Init, DeterministicAndGpt2Scaled) {
  const ModelConfig c = preset_config("small");
  const ParamLayout l = gpt2_layout(c);
  std::vector<float> a(l.total()), b(l.total());
  init_gpt2_params(a, l, c, 42);
  init_gpt2_params(b, l, c, 42);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  const TensorInfo& w = l.at("transformer.h.0.attn.c_attn.weight");
  double ss = 0;
  for (size_t i = 0; i < w.numel; ++i) ss += a[w.offset + i] * a[w.offset + i];
  EXPECT_NEAR(std::sqrt(ss / w.numel), 0.02, 0.001);
  EXPECT_EQ(a[l.at("transformer.h.0.ln_1.weight").offset], 1.0f);
  EXPECT_EQ(a[l.at("transformer.h.0.ln_1.bias").offset], 0.0f);
}

TEST(LrSchedule, WarmupThenCosineToMin) {
  const LrSchedule s{1.0f, 0.1f, 10, 110};
  EXPECT_FLOAT_EQ(s.at(0), 0.1f);
  EXPECT_FLOAT_EQ(s.at(9), 1.0f);
  EXPECT_FLOAT_EQ(s.at(10), 1.0f);
  EXPECT_NEAR(s.at(60), 0.55f, 1e-6);
  EXPECT_FLOAT_EQ(s.at(110), 0.1f);
  EXPECT_FLOAT_EQ(s.at(1000), 0.1f);
}

TEST(Clip, MatchesPyTorchCoefficient) {
  EXPECT_FLOAT_EQ(clip_coefficient(0.5, 1.0f), 1.0f);
  EXPECT_NEAR(clip_coefficient(4.0, 1.0f), 0.25f, 1e-6);
  EXPECT_FLOAT_EQ(clip_coefficient(1e9, 0.0f), 1.0f);
}

void write_bytes(const std::filesystem::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

TEST(Safetensors, RejectsHostileFiles) {
  TempDir d;
  write_bytes(d / "short", "abc");
  EXPECT_NE(error_of([&] { SafetensorsReader r(d / "short"); }).find("not a safetensors file"),
            std::string::npos);
  std::string huge("\xff\xff\xff\xff\xff\xff\xff\x7f", 8);
  write_bytes(d / "huge", huge + "{}");
  EXPECT_NE(error_of([&] { SafetensorsReader r(d / "huge"); }).find("header length"), std::string::npos);
  auto file = [](const std::string& header, size_t data) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return s + header + std::string(data, '\0');
  };
  write_bytes(d / "json", file("{not json", 0));
  EXPECT_NE(error_of([&] { SafetensorsReader r(d / "json"); }).find("malformed"), std::string::npos);
  write_bytes(d / "dtype", file(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4));
  EXPECT_NE(error_of([&] { SafetensorsReader r(d / "dtype"); }).find("not supported"), std::string::npos);
  write_bytes(d / "range", file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
  EXPECT_NE(error_of([&] { SafetensorsReader r(d / "range"); }).find("truncated"), std::string::npos);
  write_bytes(d / "overlap", file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                  12));
  EXPECT_NE(error_of([&] { SafetensorsReader r(d / "overlap"); }).find("overlap"), std::string::npos);
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg_ = preset_config("tiny");
    layout_ = gpt2_layout(cfg_);
    params_.resize(layout_.total());
    init_gpt2_params(params_, layout_, cfg_, 3);
    m_.assign(layout_.total(), 0.5f);
    v_.assign(layout_.total(), 0.25f);
    save_checkpoint(dir_ / "ck", cfg_, layout_, params_, m_, v_, {{"step", 7}});
  }
  TempDir dir_;
  ModelConfig cfg_;
  ParamLayout layout_;
  std::vector<float> params_, m_, v_;
};

TEST_F(CheckpointTest, RoundTripsExactly) {
  const CheckpointData ck = load_checkpoint(dir_ / "ck", true);
  EXPECT_EQ(ck.cfg.describe(), cfg_.describe());
  EXPECT_EQ(0, std::memcmp(ck.params.data(), params_.data(), params_.size() * 4));
  EXPECT_EQ(ck.m, m_);
  EXPECT_EQ(ck.v, v_);
  EXPECT_EQ(ck.state["step"], 7);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "ck.tmp"));
}

TEST_F(CheckpointTest, HfFilesHaveUnpaddedNamesAndConfig) {
  const SafetensorsReader r(dir_ / "ck" / "model.safetensors");
  EXPECT_EQ(r.find("transformer.wte.weight")->shape, (std::vector<int64_t>{256, 32}));
  EXPECT_EQ(r.entries().size(), layout_.tensors().size());
  const auto j = nlohmann::json::parse(read_text_file(dir_ / "ck" / "config.json"));
  EXPECT_EQ(j["model_type"], "gpt2");
  EXPECT_EQ(j["n_positions"], 64);
  EXPECT_EQ(j["activation_function"], "gelu_new");
}

TEST_F(CheckpointTest, CorruptionIsDetected) {
  const auto model = dir_ / "ck" / "model.safetensors";
  {
    std::fstream f(model, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x7f');
  }
  EXPECT_NE(error_of([&] { load_checkpoint(dir_ / "ck", false); }).find("SHA-256"), std::string::npos);
  std::filesystem::resize_file(model, 100);
  EXPECT_NE(error_of([&] { load_checkpoint(dir_ / "ck", false); }).find("truncated"), std::string::npos);
  std::filesystem::remove(model);
  EXPECT_NE(error_of([&] { load_checkpoint(dir_ / "ck", false); }).find("missing"), std::string::npos);
}

TEST_F(CheckpointTest, MismatchedConfigIsAClearError) {
  std::filesystem::remove(dir_ / "ck" / "manifest.json");  // a hand-edited model directory
  auto j = nlohmann::json::parse(read_text_file(dir_ / "ck" / "config.json"));
  j["n_head"] = 5;
  write_text_atomic(dir_ / "ck" / "config.json", j.dump());
  EXPECT_NE(error_of([&] { load_checkpoint(dir_ / "ck", false); }).find("must divide"), std::string::npos);
  j["n_head"] = 2;
  j["n_embd"] = 64;
  write_text_atomic(dir_ / "ck" / "config.json", j.dump());
  EXPECT_NE(error_of([&] { load_checkpoint(dir_ / "ck", false); }).find("has shape"), std::string::npos);
  EXPECT_NE(error_of([&] { load_checkpoint(dir_ / "ck", true); }).find("not a resumable"), std::string::npos);
}

TEST_F(CheckpointTest, RunDirectoryResolvesLatestAndPrunes) {
  const auto run = dir_ / "run";
  std::filesystem::create_directories(run);
  for (int64_t step : {10, 20, 30}) {
    const auto p = checkpoint_path(run, step);
    save_checkpoint(p, cfg_, layout_, params_, m_, v_, {{"step", step}});
    publish_checkpoint(run, p, 2);
  }
  EXPECT_EQ(resolve_checkpoint(run).filename(), "ckpt-00000030");
  EXPECT_FALSE(std::filesystem::exists(checkpoint_path(run, 10)));
  EXPECT_TRUE(std::filesystem::exists(checkpoint_path(run, 20)));
}

// Writes a random-token data directory the loader accepts.
void make_dataset(const std::filesystem::path& dir, size_t n) {
  std::filesystem::create_directories(dir);
  SplitMix64 rng(5);
  std::vector<uint16_t> toks(n);
  for (auto& t : toks) t = static_cast<uint16_t>(rng.next() % 64);  // a skewed, learnable distribution
  write_shard(dir / "train_000000.bin", toks, 256);
  write_shard(dir / "val_000000.bin", std::span(toks).first(n / 4), 256);
  write_text_atomic(dir / "meta.json", nlohmann::json{{"tokenizer", "byte"},
                                                      {"vocab_size", 256},
                                                      {"train_tokens", n},
                                                      {"val_tokens", n / 4},
                                                      {"source", "test"}}
                                           .dump());
}

// A tiny model's short run on a small learnable data set: the setting of the trainer tests below.
struct TinyRun {
  TempDir d;
  TokenDataset train;
  ModelConfig cfg = preset_config("tiny");
  TrainOptions opt;
  TinyRun() : train(prepared(d), "train") {
    opt.batch = 4;
    opt.context = 32;
    opt.lr = {1e-2f, 0.1f, 2, 10};
  }
  static std::filesystem::path prepared(const TempDir& dir) {
    make_dataset(dir / "data", 20000);
    return dir / "data";
  }
  // A model initialised from `seed`.
  std::unique_ptr<ModelBackend> fresh(uint64_t seed, int threads) const {
    auto m = make_backend(Device::cpu, cfg, opt.batch, opt.context, threads);
    std::vector<float> p(m->layout().total());
    init_gpt2_params(p, m->layout(), cfg, seed);
    m->write_params(p);
    return m;
  }
};

TEST(Resume, SaveReloadContinueIsBitIdentical) {
  const TinyRun run;
  const TempDir& d = run.d;
  const TokenDataset& train = run.train;
  const ModelConfig& cfg = run.cfg;
  const TrainOptions& opt = run.opt;
  auto fresh = [&] { return run.fresh(11, 2); };
  auto straight = fresh();
  Trainer t1(*straight, train, opt);
  for (int i = 0; i < 10; ++i) t1.step();

  auto first = fresh();
  Trainer t2(*first, train, opt);
  for (int i = 0; i < 5; ++i) t2.step();
  const size_t n = first->layout().total();
  std::vector<float> p(n), m(n), v(n);
  first->read_params(p);
  first->read_moments(m, v);
  save_checkpoint(d / "ck", cfg, first->layout(), p, m, v, t2.state());

  const CheckpointData ck = load_checkpoint(d / "ck", true);
  auto resumed = make_backend(Device::cpu, ck.cfg, opt.batch, opt.context, 2);
  resumed->write_params(ck.params);
  resumed->write_moments(ck.m, ck.v);
  Trainer t3(*resumed, train, opt);
  t3.restore(ck.state);
  float last = 0;
  for (int i = 0; i < 5; ++i) last = t3.step().loss;
  EXPECT_EQ(t3.steps_done(), 10);

  std::vector<float> a(n), b(n);
  straight->read_params(a);
  resumed->read_params(b);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), n * sizeof(float))) << "parameters differ after resume";
  EXPECT_TRUE(std::isfinite(last));
}

// One replica with streams = 2 takes the step two data-parallel peers take together: each peer's
// gradient on its own batch, averaged (as the reduce_grads hook of `allreduce` does), then one update.
TEST(Training, StreamsTakeTheStepsOfDataParallelPeers) {
  const TinyRun run;
  const TokenDataset& train = run.train;
  const TrainOptions& opt = run.opt;
  auto fresh = [&] { return run.fresh(5, 1); };
  TrainOptions both = opt;
  both.streams = 2;
  auto one = fresh();
  Trainer joint(*one, train, both);

  auto a = fresh(), b = fresh();
  const size_t n = a->layout().total();
  std::vector<float> g1(n), g0(n), p(n), m(n), v(n);
  TrainOptions peer1 = opt;
  peer1.peer = 1;
  peer1.reduce_grads = [&](ModelBackend& x) { x.read_grads(g1); };
  TrainOptions peer0 = opt;
  peer0.reduce_grads = [&](ModelBackend& x) {
    x.read_grads(g0);
    for (size_t k = 0; k < n; ++k) g0[k] = 0.5f * (g0[k] + g1[k]);
    x.write_grads(g0);
  };
  Trainer t0(*a, train, peer0), t1(*b, train, peer1);
  for (int i = 0; i < 3; ++i) {
    a->read_params(p);  // peer 1 holds peer 0's model, as every all-reduce peer does
    a->read_moments(m, v);
    b->write_params(p);
    b->write_moments(m, v);
    t1.step();
    const StepStats s = t0.step();
    EXPECT_EQ(joint.step().tokens, 2 * s.tokens);
  }
  std::vector<float> x(n), y(n);
  one->read_params(x);
  a->read_params(y);
  double worst = 0;
  for (size_t k = 0; k < n; ++k) worst = std::max(worst, double(std::fabs(x[k] - y[k])));
  EXPECT_LT(worst, 1e-5);

  // Both streams' positions go into the state and come back.
  auto other = fresh();
  Trainer again(*other, train, both);
  again.restore(joint.state());
  EXPECT_EQ(again.state(), joint.state());
  nlohmann::json bad = joint.state();
  bad.erase("data_streams");
  EXPECT_THROW(again.restore(bad), std::runtime_error);
}

TEST(Training, LossFallsOnLearnableData) {
  TempDir d;
  make_dataset(d / "data", 20000);
  const TokenDataset train(d / "data", "train");
  const ModelConfig cfg = preset_config("tiny");
  TrainOptions opt;
  opt.batch = 8;
  opt.context = 32;
  opt.lr = {3e-3f, 0.1f, 5, 60};
  auto model = make_backend(Device::cpu, cfg, opt.batch, opt.context, 2);
  std::vector<float> p(model->layout().total());
  init_gpt2_params(p, model->layout(), cfg, 1);
  model->write_params(p);
  Trainer t(*model, train, opt);
  const float first = t.step().loss;
  float last = first;
  for (int i = 0; i < 59; ++i) last = t.step().loss;
  EXPECT_NEAR(first, std::log(256.0f), 0.1f);  // a fresh model is near uniform
  EXPECT_LT(last, std::log(64.0f) + 0.1f);     // it learned that only 64 tokens occur
}

}  // namespace
}  // namespace murmur

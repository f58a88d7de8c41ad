// The CPU model against the PyTorch reference (tests/reference/gpt2_ref.py):
// logits, loss, every parameter gradient, and 10 AdamW steps with clipping on
// the tiny config; and a Murmur checkpoint loaded by the reference.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "model/adamw.h"
#include "model/atomic_file.h"
#include "model/checkpoint.h"
#include "model/init.h"
#include "model/safetensors.h"
#include "tests/test_util.h"

namespace murmur {
namespace {

using test::TempDir;

std::vector<float> tensor(const SafetensorsReader& r, const std::string& name) {
  const auto* e = r.find(name);
  if (!e) throw std::runtime_error("golden file lacks " + name);
  std::vector<float> v(e->numel);
  r.read(name, e->shape, v.data());
  return v;
}

// |a - b| <= atol + rtol * |b| elementwise, with atol relative to the tensor's scale.
// Optionally up to `outlier_frac` of the elements may exceed that, but each by no
// more than `outlier_atol`.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rtol,
                  double atol_scale, const std::string& what, double outlier_frac = 0,
                  double outlier_atol = 0) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double maxabs = 0;
  for (float w : want) maxabs = std::max(maxabs, static_cast<double>(std::fabs(w)));
  const double atol = atol_scale * std::max(maxabs, 1e-30);
  size_t bad = 0, first = 0, outliers = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double diff = std::fabs(got[i] - want[i]);
    if (diff <= atol + rtol * std::fabs(want[i])) continue;
    if (diff <= outlier_atol && static_cast<double>(++outliers) <= outlier_frac * got.size()) continue;
    if (bad++ == 0) first = i;
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " elements differ; first at " << first
                     << ": got " << got[first] << " want " << want[first] << " (atol " << atol << ")";
}

class ReferenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    python_ = test::torch_python();
    if (python_.empty()) return;
    dir_ = std::make_unique<TempDir>();
    const auto r =
        test::run_command(python_ + " " + test::source_dir() + "/tests/reference/gpt2_ref.py golden --out " +
                          (dir_->path() / "golden.safetensors").string());
    if (r.rc != 0) throw std::runtime_error("golden generation failed:\n" + r.output);
    golden_ = std::make_unique<SafetensorsReader>(dir_->path() / "golden.safetensors");
  }
  static void TearDownTestSuite() {
    golden_.reset();
    dir_.reset();
  }
  void SetUp() override {
    ASSERT_FALSE(python_.empty())
        << "no Python interpreter can `import torch`: install Debian's python3-torch "
           "(scripts/deps.sh does) or set MURMUR_PYTHON";
    cfg_ = preset_config("tiny");
    model_ = make_backend(Device::cpu, cfg_, 4, 32, 2);
    std::vector<float> params(model_->layout().total(), 0.0f);
    for (const TensorInfo& t : model_->layout().tensors())
      golden_->read(t.name, t.shape, params.data() + t.offset);
    model_->write_params(params);
    const auto in = tensor(*golden_, "inputs"), tg = tensor(*golden_, "targets");
    inputs_.assign(in.begin(), in.end());
    targets_.assign(tg.begin(), tg.end());
  }
  const int32_t* batch_inputs(int s) const { return inputs_.data() + s * 4 * 32; }
  const int32_t* batch_targets(int s) const { return targets_.data() + s * 4 * 32; }

  static inline std::string python_;
  static inline std::unique_ptr<TempDir> dir_;
  static inline std::unique_ptr<SafetensorsReader> golden_;
  ModelConfig cfg_;
  std::unique_ptr<ModelBackend> model_;
  std::vector<int32_t> inputs_, targets_;
};

TEST_F(ReferenceTest, LogitsAndLossMatch) {
  const float loss = model_->forward(batch_inputs(0), batch_targets(0), 4, 32);
  std::vector<float> logits(4 * 32 * cfg_.padded_vocab);
  model_->read_logits(logits);
  // fp32 with different summation orders (BLAS vs ATen): ~1e-6 relative.
  expect_close(logits, tensor(*golden_, "logits"), 1e-4, 1e-5, "logits");
  EXPECT_NEAR(loss, tensor(*golden_, "loss")[0], 1e-5);
}

TEST_F(ReferenceTest, EveryGradientMatches) {
  model_->zero_grad();
  model_->forward(batch_inputs(0), batch_targets(0), 4, 32);
  model_->backward(1.0f / (4 * 32));
  std::vector<float> grads(model_->layout().total());
  model_->read_grads(grads);
  for (const TensorInfo& t : model_->layout().tensors()) {
    std::vector<float> g(grads.begin() + t.offset, grads.begin() + t.offset + t.numel);
    // Gradients pass through more reductions than logits: 1e-4 of the tensor's largest entry.
    expect_close(g, tensor(*golden_, "grad." + t.name), 1e-3, 1e-4, "grad " + t.name);
  }
}

TEST_F(ReferenceTest, TenAdamWStepsWithClippingMatch) {
  const auto hyper = tensor(*golden_, "hyper");  // lr, wd, clip, beta1, beta2, eps
  const AdamWConfig adamw{hyper[3], hyper[4], hyper[5], hyper[1]};
  const auto want_losses = tensor(*golden_, "step_losses");
  for (int s = 0; s < 10; ++s) {
    model_->zero_grad();
    const float loss = model_->forward(batch_inputs(s), batch_targets(s), 4, 32);
    model_->backward(1.0f / (4 * 32));
    model_->adamw_step(adamw, hyper[0], clip_coefficient(model_->grad_norm(), hyper[2]), s + 1);
    EXPECT_NEAR(loss, want_losses[s], 1e-4 * std::fabs(want_losses[s])) << "step " << s;
  }
  std::vector<float> params(model_->layout().total());
  model_->read_params(params);
  for (const TensorInfo& t : model_->layout().tensors()) {
    std::vector<float> p(params.begin() + t.offset, params.begin() + t.offset + t.numel);
    std::vector<float> want = tensor(*golden_, "final." + t.name);
    if (t.name.ends_with("attn.c_attn.bias")) {
      // The key bias has an exactly zero true gradient (it shifts all scores of a query
      // equally, which softmax ignores); Adam turns both sides' rounding noise into
      // lr-sized steps of arbitrary sign, so that slice is not comparable.
      const size_t C = cfg_.n_embd;
      std::fill(p.begin() + C, p.begin() + 2 * C, 0.0f);
      std::fill(want.begin() + C, want.begin() + 2 * C, 0.0f);
    }
    // Adam normalises tiny gradients, so rounding differences grow to ~lr * 1e-3 after 10 steps.
    // Where a gradient is near zero, Adam's normalised step is ±lr-sized whatever the
    // gradient's size, and a rounding difference (another summation order, another
    // thread count) can change it: allow 1 element in 500 to differ, by under lr.
    expect_close(p, want, 1e-3, 1e-4, "final " + t.name, 2e-3, hyper[0]);
  }
}

TEST_F(ReferenceTest, CheckpointLoadsInPyTorchWithTheSameLoss) {
  TempDir dir;
  const AdamWConfig adamw;
  for (int s = 0; s < 3; ++s) {
    model_->zero_grad();
    model_->forward(batch_inputs(s), batch_targets(s), 4, 32);
    model_->backward(1.0f / (4 * 32));
    model_->adamw_step(adamw, 1e-2f, 1.0f, s + 1);
  }
  const float loss = model_->forward(batch_inputs(5), batch_targets(5), 4, 32);
  const size_t n = model_->layout().total();
  std::vector<float> params(n), m(n), v(n);
  model_->read_params(params);
  model_->read_moments(m, v);
  save_checkpoint(dir / "ckpt", cfg_, model_->layout(), params, m, v, {{"step", 3}});
  std::vector<float> in(batch_inputs(5), batch_inputs(5) + 128), tg(batch_targets(5), batch_targets(5) + 128);
  write_file_atomic(dir / "tokens.safetensors", [&](std::FILE* f) {
    write_safetensors(f, {{"inputs", {4, 32}, in.data()}, {"targets", {4, 32}, tg.data()}});
  });
  const auto r = test::run_command(
      python_ + " " + test::source_dir() + "/tests/reference/gpt2_ref.py loss --checkpoint " +
      (dir / "ckpt").string() + " --tokens " + (dir / "tokens.safetensors").string());
  ASSERT_EQ(r.rc, 0) << r.output;
  const double ref = nlohmann::json::parse(r.output)["loss"].get<double>();
  EXPECT_NEAR(loss, ref, 1e-5 * ref);
}

}  // namespace
}  // namespace murmur

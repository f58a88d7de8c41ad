// The CUDA backend against the CPU backend (the fp32 reference): every device op
// on fresh random inputs, cuBLASLt on misaligned operands, the whole model's
// logits/loss/gradients (the tiny preset and a config of edge shapes with gradient
// accumulation), 12 AdamW steps on a learnable stream (losses, parameters and
// moments), and save -> reload -> continue. Each GPU test skips itself, with the reason,
// where no CUDA device is visible (or the build has no CUDA).
//
// Tolerances (docs/cuda.md): errors are measured as max|got - want| / max|want| over
// a tensor. fp32 mode differs from the CPU only in summation order and in exp/tanh
// implementations: 1e-5 per op, 1e-4 through the whole model. bf16 mode rounds
// every activation to 8 significant bits (relative step 2^-8): an op whose inputs
// are already bf16 and whose output is rounded once stays within 1 %; parameter
// gradients are fp32 GEMM outputs of bf16 operands (1e-4); through the whole model
// the roundings compound over the layers (5 % on gradients, loss within 0.02 nats).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/adamw.h"
#include "model/backend.h"
#include "model/checkpoint.h"
#include "model/cpu_ops.h"
#include "model/cuda/cuda_backend.h"
#include "model/init.h"
#include "tests/test_util.h"
#if MURMUR_MODEL_CUDA
#include "model/cuda/ops.h"
#endif

namespace murmur {
namespace {

#define REQUIRE_GPU()                                                              \
  do {                                                                             \
    std::string why_;                                                              \
    if (cuda_device_count(&why_) == 0) GTEST_SKIP() << "no CUDA device: " << why_; \
  } while (0)

std::vector<int32_t> random_tokens(size_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return t;
}

// max|got - want| / max|want| over [0, n), with the index of the worst element.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 1e-30, worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, static_cast<double>(std::fabs(want[i])));
    const double e = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(e <= worst)) worst = e, at = i;  // also catches NaN
  }
  EXPECT_LE(worst / scale, tol) << what << ": element " << at << " is " << got[at] << ", expected "
                                << want[at] << " (tensor max " << scale << ")";
}

TEST(CudaPrecision, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(parse_cuda_precision("fp32"), CudaPrecision::fp32);
  EXPECT_EQ(parse_cuda_precision("bf16"), CudaPrecision::bf16);
  EXPECT_THROW(parse_cuda_precision("fp16"), std::invalid_argument);
}

TEST(CudaBackend, NoDeviceIsAClearError) {
  std::string why;
  if (cuda_device_count(&why) > 0)
    GTEST_SKIP() << "a CUDA device is visible: the error path is not reachable";
  EXPECT_FALSE(why.empty());
  try {
    make_backend(Device::cuda, preset_config("tiny"), 2, 16, 1);
    FAIL() << "make_backend(cuda) succeeded without a device";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--device cuda"), std::string::npos) << e.what();
  }
}

#if MURMUR_MODEL_CUDA

std::vector<float> random_vector(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(CudaOps, GroupTokensListsPositionsPerTokenInOrder) {  // host code: runs without a GPU
  const std::vector<int32_t> tokens{3, 1, 3, 0, 1, 3};
  const cuda::TokenGroups g = cuda::group_tokens(tokens.data(), tokens.size(), 5);
  EXPECT_EQ(g.count, 3);
  EXPECT_EQ(g.packed, (std::vector<int32_t>{0, 1, 3, /*starts*/ 0, 1, 3, 6, /*positions*/ 3, 1, 4, 0, 2, 5}));
  const std::vector<int32_t> bad{0, 5};
  EXPECT_THROW(cuda::group_tokens(bad.data(), bad.size(), 5), std::invalid_argument);
}

using cuda::bf16;

// Host <-> device in the activation type; inputs are rounded to Act first so the CPU
// reference sees exactly what the kernel sees.
template <class Act>
struct Dev {
  cuda::DeviceArray<Act> a;
  explicit Dev(const std::vector<float>& h) : a(h.size()) {
    std::vector<Act> x(h.size());
    for (size_t i = 0; i < h.size(); ++i) x[i] = static_cast<Act>(h[i]);
    a.upload(x.data(), x.size());
  }
  explicit Dev(size_t n) : Dev(std::vector<float>(n, 0.0f)) {}
  Act* get() const { return a.get(); }
  std::vector<float> host() const {
    std::vector<Act> x(a.size());
    a.download(x.data(), x.size());
    return std::vector<float>(x.begin(), x.end());
  }
};

template <class Act>
std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = static_cast<float>(static_cast<Act>(x));
  return v;
}

template <class Act>
struct Tol;
template <>
struct Tol<float> {
  static constexpr double act = 1e-5, grad = 1e-5, attention = 5e-5;
};
template <>
struct Tol<bf16> {
  static constexpr double act = 1e-2, grad = 1e-4, attention = 3e-2;
};

template <class Act>
class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_GPU(); }
};
using ActTypes = ::testing::Types<float, bf16>;
class ActNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, float> ? "fp32" : "bf16";
  }
};
TYPED_TEST_SUITE(CudaOps, ActTypes, ActNames);

TYPED_TEST(CudaOps, Encoder) {
  using Act = TypeParam;
  const int B = 3, T = 5, C = 24, V = 7;
  const auto tokens = random_tokens(B * T, V, 1);
  const auto wte = random_vector(V * C, 2), wpe = random_vector(T * C, 3),
             dout = rounded<Act>(random_vector(B * T * C, 4));
  std::vector<float> out(B * T * C), dwte = random_vector(V * C, 5), dwpe = random_vector(T * C, 6);
  cuda::DeviceArray<int32_t> d_tokens(tokens.size());
  d_tokens.upload(tokens.data(), tokens.size());
  Dev<float> d_wte(wte), d_wpe(wpe), d_dwte(dwte), d_dwpe(dwpe);
  Dev<Act> d_out(out.size()), d_dout(dout);
  cuda::encoder_forward(d_out.get(), d_tokens.get(), d_wte.get(), d_wpe.get(), B, T, C);
  cpu::encoder_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
  expect_close(d_out.host(), out, Tol<Act>::act, "encoder out");

  const cuda::TokenGroups g = cuda::group_tokens(tokens.data(), tokens.size(), V);
  cuda::DeviceArray<int32_t> d_groups(g.packed.size());
  d_groups.upload(g.packed.data(), g.packed.size());
  cuda::encoder_backward(d_dwte.get(), d_dwpe.get(), d_dout.get(), d_groups.get(), g.count, B, T, C);
  cpu::encoder_backward(dwte.data(), dwpe.data(), dout.data(), tokens.data(), B, T, C);
  expect_close(d_dwte.host(), dwte, 1e-5, "dwte");
  expect_close(d_dwpe.host(), dwpe, 1e-5, "dwpe");
}

TYPED_TEST(CudaOps, LayerNorm) {
  using Act = TypeParam;
  const size_t N = 300;  // more than one 256-row chunk of the column reduction
  const int C = 80;
  const auto inp = rounded<Act>(random_vector(N * C, 1, 2.0f)), dout = rounded<Act>(random_vector(N * C, 2));
  const auto w = random_vector(C, 3), b = random_vector(C, 4);
  auto dinp = rounded<Act>(random_vector(N * C, 5));
  auto dw = random_vector(C, 6), db = random_vector(C, 7);
  std::vector<float> out(N * C), mean(N), rstd(N);
  Dev<Act> d_inp(inp), d_dout(dout), d_out(N * C), d_dinp(dinp);
  Dev<float> d_w(w), d_b(b), d_mean(N), d_rstd(N), d_dw(dw), d_db(db),
      d_scratch(cuda::column_scratch_floats(N, C));
  cuda::layernorm_forward(d_out.get(), d_mean.get(), d_rstd.get(), d_inp.get(), d_w.get(), d_b.get(), N, C);
  cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C);
  expect_close(d_out.host(), out, Tol<Act>::act, "layernorm out");
  expect_close(d_mean.host(), mean, 1e-5, "mean");
  expect_close(d_rstd.host(), rstd, 1e-5, "rstd");

  cuda::layernorm_backward(d_dinp.get(), d_dw.get(), d_db.get(), d_dout.get(), d_inp.get(), d_w.get(),
                           d_mean.get(), d_rstd.get(), N, C, d_scratch.get());
  cpu::layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), mean.data(),
                          rstd.data(), N, C);
  expect_close(d_dinp.host(), dinp, Tol<Act>::act, "layernorm dinp (accumulated)");
  expect_close(d_dw.host(), dw, 1e-5, "layernorm dw");
  expect_close(d_db.host(), db, 1e-5, "layernorm db");
}

TYPED_TEST(CudaOps, MatmulWithBiasResidualAndBackward) {
  using Act = TypeParam;
  const size_t N = 70;
  const int C = 48, OC = 40;
  const auto inp = rounded<Act>(random_vector(N * C, 1)), w = rounded<Act>(random_vector(C * OC, 2, 0.1f));
  const auto bias = rounded<Act>(random_vector(OC, 3)), res = rounded<Act>(random_vector(N * OC, 4));
  const auto dout = rounded<Act>(random_vector(N * OC, 5));
  Dev<Act> d_inp(inp), d_w(w), d_bias(bias), d_res(res), d_out(N * OC), d_dout(dout), d_dinp(N * C);
  cuda::Gemm gemm;
  cuda::matmul_forward(gemm, d_out.get(), d_inp.get(), d_w.get(), d_bias.get(), d_res.get(), N, C, OC);
  std::vector<float> out(N * OC);
  cpu::matmul_forward(out.data(), inp.data(), w.data(), bias.data(), N, C, OC);
  for (size_t i = 0; i < out.size(); ++i) out[i] += res[i];
  expect_close(d_out.host(), out, Tol<Act>::act, "matmul out + bias + residual");

  auto dw = random_vector(C * OC, 6), dbias = random_vector(OC, 7);
  Dev<float> d_dw(dw), d_dbias(dbias), d_scratch(cuda::column_scratch_floats(N, OC));
  cuda::matmul_backward(gemm, d_dinp.get(), d_dw.get(), d_dbias.get(), d_dout.get(), d_inp.get(), d_w.get(),
                        N, C, OC, d_scratch.get());
  std::vector<float> dinp(N * C, 0.0f);
  cpu::matmul_backward(dinp.data(), dw.data(), dbias.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  expect_close(d_dinp.host(), dinp, Tol<Act>::act, "matmul dinp");
  expect_close(d_dw.host(), dw, Tol<Act>::grad, "matmul dw (accumulated)");
  expect_close(d_dbias.host(), dbias, 1e-5, "matmul dbias (accumulated)");
}

// cuBLASLt told the real alignment: every operand one element past a 256-byte
// boundary (4 bytes in fp32, 2 in bf16), odd shapes and leading dimensions, and
// beta = 1 accumulation, which a candidate algorithm that is refused must not apply.
TYPED_TEST(CudaOps, GemmOnMisalignedOperands) {
  using Act = TypeParam;
  const int64_t M = 37, N = 29, K = 23;
  const auto a = rounded<Act>(random_vector(M * K + 1, 1)), b = rounded<Act>(random_vector(K * N + 1, 2));
  const auto d0 = random_vector(M * N + 1, 3);
  Dev<Act> d_a(a), d_b(b);
  Dev<float> d_d(d0);
  cuda::GemmSpec s;
  s.M = M, s.N = N, s.K = K;
  s.A = d_a.get() + 1, s.lda = K;
  s.B = d_b.get() + 1, s.ldb = N;
  s.D = d_d.get() + 1, s.ldd = N;
  s.ab_type = std::is_same_v<Act, float> ? CUDA_R_32F : CUDA_R_16BF;
  s.d_type = CUDA_R_32F;
  s.beta = 1.0f;
  cuda::Gemm gemm;
  gemm.run(s);
  gemm.run(s);  // the cached algorithm
  std::vector<float> want(d0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) acc += double{a[1 + i * K + k]} * b[1 + k * N + j];
      want[1 + i * N + j] += static_cast<float>(2.0 * acc);
    }
  expect_close(d_d.host(), want, 1e-5, "D + 2 A B on misaligned operands (element 0 untouched)");
  this->RecordProperty("rejected_algorithms", static_cast<int>(gemm.rejected_algorithms()));

  cuda::GemmSpec biased = s;
  biased.beta = 0.0f;
  biased.bias = d_d.get() + 1;  // 4-byte aligned
  EXPECT_THROW(gemm.run(biased), std::invalid_argument);
}

TYPED_TEST(CudaOps, LmHead) {
  using Act = TypeParam;
  const size_t N = 20;
  const int C = 32, Vp = 256;
  const auto inp = rounded<Act>(random_vector(N * C, 1)), wte = rounded<Act>(random_vector(Vp * C, 2, 0.1f));
  const auto dlogits = rounded<Act>(random_vector(N * Vp, 3));
  Dev<Act> d_inp(inp), d_wte(wte), d_logits(N * Vp), d_dlogits(dlogits), d_dinp(N * C);
  auto dwte = random_vector(Vp * C, 4);
  Dev<float> d_dwte(dwte);
  cuda::Gemm gemm;
  cuda::lm_head_forward(gemm, d_logits.get(), d_inp.get(), d_wte.get(), N, C, Vp);
  std::vector<float> logits(N * Vp), dinp(N * C, 0.0f);
  cpu::lm_head_forward(logits.data(), inp.data(), wte.data(), N, C, Vp);
  expect_close(d_logits.host(), logits, Tol<Act>::act, "logits");
  cuda::lm_head_backward(gemm, d_dinp.get(), d_dwte.get(), d_dlogits.get(), d_inp.get(), d_wte.get(), N, C,
                         Vp);
  cpu::lm_head_backward(dinp.data(), dwte.data(), dlogits.data(), inp.data(), wte.data(), N, C, Vp);
  expect_close(d_dinp.host(), dinp, Tol<Act>::act, "lm head dinp");
  expect_close(d_dwte.host(), dwte, Tol<Act>::grad, "dwte (accumulated)");
}

TYPED_TEST(CudaOps, CausalAttention) {
  using Act = TypeParam;
  const int B = 2, T = 37, C = 48, NH = 3;  // T not a multiple of 32: partial warps and masks
  const auto qkv = rounded<Act>(random_vector(size_t{B} * T * 3 * C, 1)),
             dout = rounded<Act>(random_vector(size_t{B} * T * C, 2));
  Dev<Act> d_qkv(qkv), d_out(size_t{B} * T * C), d_att(size_t{B} * NH * T * T), d_dout(dout),
      d_dqkv(size_t{B} * T * 3 * C), d_dscores(size_t{NH} * T * T);
  Dev<float> d_scores(size_t{NH} * T * T);
  cuda::Gemm gemm;
  cuda::attention_forward(gemm, d_out.get(), d_att.get(), d_qkv.get(), d_scores.get(), B, T, C, NH);
  std::vector<float> out(size_t{B} * T * C), att(size_t{B} * NH * T * T), dqkv(qkv.size(), 0.0f),
      scratch(size_t{T} * T * omp_get_max_threads());
  cpu::attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
  expect_close(d_att.host(), att, Tol<Act>::act, "attention probabilities");
  expect_close(d_out.host(), out, Tol<Act>::attention, "attention out");
  // Backward from the CPU's probabilities rounded like the device's, so only backward is measured.
  const auto att_r = rounded<Act>(att);
  Dev<Act> d_att_r(att_r);
  cuda::attention_backward(gemm, d_dqkv.get(), d_dout.get(), d_qkv.get(), d_att_r.get(), d_scores.get(),
                           d_dscores.get(), B, T, C, NH);
  cpu::attention_backward(dqkv.data(), dout.data(), qkv.data(), att_r.data(), B, T, C, NH, scratch.data());
  expect_close(d_dqkv.host(), dqkv, Tol<Act>::attention, "attention dqkv");
}

TYPED_TEST(CudaOps, Gelu) {
  using Act = TypeParam;
  const size_t n = 1000;
  const auto inp = rounded<Act>(random_vector(n, 1, 3.0f)), dout = rounded<Act>(random_vector(n, 2));
  Dev<Act> d_inp(inp), d_dout(dout), d_out(n), d_dinp(n);
  cuda::gelu_forward(d_out.get(), d_inp.get(), n);
  cuda::gelu_backward(d_dinp.get(), d_inp.get(), d_dout.get(), n);
  std::vector<float> out(n), dinp(n, 0.0f);
  cpu::gelu_forward(out.data(), inp.data(), n);
  cpu::gelu_backward(dinp.data(), inp.data(), dout.data(), n);
  expect_close(d_out.host(), out, Tol<Act>::act, "gelu");
  expect_close(d_dinp.host(), dinp, Tol<Act>::act, "gelu backward");
}

TYPED_TEST(CudaOps, CrossEntropyIgnoresPaddedVocabulary) {
  using Act = TypeParam;
  const size_t N = 9;
  const int V = 250, Vp = 256;
  auto logits = random_vector(N * Vp, 1, 3.0f);
  for (size_t n = 0; n < N; ++n)
    for (int v = V; v < Vp; ++v) logits[n * Vp + v] = 1e4f;  // must not count
  logits = rounded<Act>(logits);
  const auto targets = random_tokens(N, V, 2);
  cuda::DeviceArray<int32_t> d_targets(N);
  d_targets.upload(targets.data(), N);
  Dev<Act> d_logits(logits);
  Dev<float> d_losses(N), d_lse(N);
  cuda::crossentropy_forward(d_losses.get(), d_lse.get(), d_logits.get(), d_targets.get(), N, V, Vp);
  std::vector<float> losses(N), lse(N);
  cpu::crossentropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), N, V, Vp);
  expect_close(d_losses.host(), losses, 1e-5, "losses");
  expect_close(d_lse.host(), lse, 1e-6, "logsumexp");
  cuda::crossentropy_backward(d_logits.get(), d_lse.get(), d_targets.get(), N, V, Vp, 0.25f);
  cpu::crossentropy_backward_inplace(logits.data(), lse.data(), targets.data(), N, V, Vp, 0.25f);
  expect_close(d_logits.host(), logits, Tol<Act>::act, "dlogits");
}

TEST(CudaKernels, AdamWMatchesTheCpuUpdate) {
  REQUIRE_GPU();
  const ModelConfig cfg = preset_config("tiny");
  const ParamLayout layout = gpt2_layout(cfg);
  const size_t n = layout.total();
  auto p = random_vector(n, 1), m = random_vector(n, 2, 0.01f), g = random_vector(n, 4);
  auto v = random_vector(n, 3, 0.01f);
  for (float& x : v) x = x * x;
  std::vector<cuda::AdamWTensor> table;
  size_t max_numel = 0;
  for (const TensorInfo& t : layout.tensors()) {
    table.push_back({t.offset, t.numel, t.decay ? 1 : 0});
    max_numel = std::max(max_numel, t.numel);
  }
  cuda::DeviceArray<cuda::AdamWTensor> d_table(table.size());
  d_table.upload(table.data(), table.size());
  Dev<float> d_p(p), d_m(m), d_v(v), d_g(g);
  Dev<bf16> d_low(n);
  const AdamWConfig c;
  const float lr = 3e-3f, scale = 0.5f;
  const int64_t t = 7;
  const cuda::AdamWArgs a{c.beta1,
                          c.beta2,
                          c.eps,
                          1.0f - lr * c.weight_decay,
                          lr / (1.0f - std::pow(c.beta1, static_cast<float>(t))),
                          std::sqrt(1.0f - std::pow(c.beta2, static_cast<float>(t))),
                          scale};
  cuda::adamw_update(d_p.get(), d_m.get(), d_v.get(), d_g.get(), d_low.get(), d_table.get(),
                     static_cast<int>(table.size()), max_numel, a);
  adamw_update_cpu(p.data(), m.data(), v.data(), g.data(), layout, c, lr, scale, t);
  expect_close(d_p.host(), p, 1e-6, "params");
  expect_close(d_m.host(), m, 1e-6, "m");
  expect_close(d_v.host(), v, 1e-6, "v");
  expect_close(d_low.host(), p, 4e-3, "bf16 parameter copy");
}

TEST(CudaKernels, SumOfSquaresIsExactEnoughAndReproducible) {
  REQUIRE_GPU();
  const size_t n = 1'000'003;
  const auto x = random_vector(n, 9);
  Dev<float> d_x(x);
  cuda::DeviceArray<double> partials(cuda::kSumSquaresPartials);
  const double a = cuda::sum_squares(d_x.get(), n, partials.get());
  const double b = cuda::sum_squares(d_x.get(), n, partials.get());
  EXPECT_EQ(a, b);
  EXPECT_NEAR(a, cpu::sum_squares(x.data(), n), 1e-9 * a);
}

#endif  // MURMUR_MODEL_CUDA

// ---- the whole model ------------------------------------------------------------------

struct Pair {
  std::unique_ptr<ModelBackend> cpu, gpu;
};

Pair make_cpu_gpu_pair(const ModelConfig& cfg, CudaPrecision precision, int B, int T, uint64_t seed) {
  Pair p{make_backend(Device::cpu, cfg, B, T, 1), make_cuda_backend(cfg, B, T, precision)};
  std::vector<float> params(p.cpu->layout().total());
  init_gpt2_params(params, p.cpu->layout(), cfg, seed);
  p.cpu->write_params(params);
  p.gpu->write_params(params);
  return p;
}

std::vector<float> slice(const std::vector<float>& v, const TensorInfo& t) {
  return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(t.offset),
                            v.begin() + static_cast<std::ptrdiff_t>(t.offset + t.numel));
}

struct ModelTol {
  double logits, loss, grads;
};

// Every tensor's gradient, then the global norm.
void expect_grads_close(ModelBackend& gpu, ModelBackend& cpu, double tol) {
  const ParamLayout& layout = cpu.layout();
  std::vector<float> gc(layout.total()), gg(layout.total());
  cpu.read_grads(gc);
  gpu.read_grads(gg);
  for (const TensorInfo& t : layout.tensors()) expect_close(slice(gg, t), slice(gc, t), tol, t.name);
  EXPECT_NEAR(gpu.grad_norm(), cpu.grad_norm(), tol * cpu.grad_norm());
}

void compare_model(CudaPrecision precision, const ModelTol& tol) {
  const int B = 3, T = 40;
  Pair p = make_cpu_gpu_pair(preset_config("tiny"), precision, B, T, 5);
  const ModelConfig& cfg = p.cpu->config();
  const auto in = random_tokens(B * T, cfg.vocab_size, 1), tg = random_tokens(B * T, cfg.vocab_size, 2);
  const float lc = p.cpu->forward(in.data(), tg.data(), B, T);
  const float lg = p.gpu->forward(in.data(), tg.data(), B, T);
  EXPECT_NEAR(lg, lc, tol.loss);
  std::vector<float> a(size_t{B} * T * cfg.padded_vocab), b(a.size());
  p.cpu->read_logits(a);
  p.gpu->read_logits(b);
  expect_close(b, a, tol.logits, "logits");
  for (auto* m : {p.cpu.get(), p.gpu.get()}) {
    m->zero_grad();
    m->backward(1.0f / (B * T));
  }
  expect_grads_close(*p.gpu, *p.cpu, tol.grads);
}

TEST(CudaModel, Fp32MatchesCpuLogitsLossAndGradients) {
  REQUIRE_GPU();
  compare_model(CudaPrecision::fp32, {1e-4, 1e-4, 1e-4});
}

TEST(CudaModel, Bf16MatchesCpuWithinBf16Tolerances) {
  REQUIRE_GPU();
  compare_model(CudaPrecision::bf16, {2e-2, 2e-2, 5e-2});
}

// ---- training against the CPU ---------------------------------------------------------

// Something to learn: a few fixed batches, repeated, whose targets are a fixed
// function of the input token (a bigram table). Uniform random targets would leave
// nothing to learn, and "the loss went down" would be a coin flip.
struct Batch {
  int B = 0, T = 0;
  std::vector<int32_t> in, tg;
};

Batch learnable_batch(int B, int T, int V, uint32_t seed) {
  Batch b{B, T, random_tokens(static_cast<size_t>(B) * T, V, seed), {}};
  for (int32_t x : b.in) b.tg.push_back(static_cast<int32_t>((7 * int64_t{x} + 3) % V));
  return b;
}

// The optimizer of the comparisons. Adam divides by sqrt(v) + eps: with the default
// eps (1e-8) an element whose gradient is at the level of the two backends'
// difference moves by up to lr either way, so the parameters would measure Adam's
// amplification of noise rather than the backends. Calibrated on the CPU backend
// against itself with gradient noise of 1e-5 of each tensor's largest element, 12
// steps with eps = 1e-8 left parameter updates differing by 160 % of the largest
// update, with eps = 1 by 0.012 %. With eps = 1 (and lr = 1) the step is about
// lr * m_hat, Lipschitz in the gradients; Adam's formula still runs in full.
constexpr float kLr = 1.0f;
AdamWConfig comparison_adamw() {
  AdamWConfig c;
  c.eps = 1.0f;
  return c;
}
// The least mean drop (nats) of the loss over the same three batches from the first
// to the last pass. The CPU backend drops by 0.24 with these settings; the losses of
// the two backends may differ by 1e-3 (fp32) or 3e-2 (bf16) per step, and a model
// that learns nothing (uniform random targets) moves by about that much either way.
constexpr double kLearnedNats = 0.12;

// One optimizer step: the micro-batches' gradients accumulated (dloss = 1 / all
// their tokens), clipped to norm 1, then AdamW step t (1-based). Returns each
// micro-batch's loss.
std::vector<float> train_step(ModelBackend& m, const std::vector<const Batch*>& micro, int64_t t) {
  size_t tokens = 0;
  for (const Batch* b : micro) tokens += b->in.size();
  std::vector<float> losses;
  m.zero_grad();
  for (const Batch* b : micro) {
    losses.push_back(m.forward(b->in.data(), b->tg.data(), b->B, b->T));
    m.backward(1.0f / static_cast<float>(tokens));
  }
  m.adamw_step(comparison_adamw(), kLr, clip_coefficient(m.grad_norm(), 1.0f), t);
  return losses;
}

// Errors after optimizer steps, per tensor: of the parameter update since the start
// relative to the largest update of the tensor (the weights themselves barely move,
// so their own scale would hide a wrong update), and of the moments m and v relative
// to their largest element.
//
// Tolerances: the CPU backend against itself, with uniform noise of d times each
// tensor's largest gradient element added after every backward (d = 1e-5 for fp32's
// other summation order, 1e-2 and 3e-2 for bf16), gave update/m/v errors of at most
// 3.4e-4/4.3e-5/3.4e-5 (d = 1e-5), 2.2e-2/4.2e-2/3.4e-2 (d = 1e-2) and
// 6.7e-2/1.3e-1/1.1e-1 (d = 3e-2) over the 12 steps and the edge-shape step below.
// fp32 allows 1e-3 and bf16 0.15; not yet measured on a GPU (docs/cuda.md).
struct StateTol {
  double update, m, v;
};

void expect_state_close(const ModelBackend& gpu, const ModelBackend& cpu, const std::vector<float>& start,
                        const StateTol& tol) {
  const ParamLayout& layout = cpu.layout();
  const size_t n = layout.total();
  std::vector<float> pc(n), pg(n), mc(n), mg(n), vc(n), vg(n);
  cpu.read_params(pc);
  gpu.read_params(pg);
  cpu.read_moments(mc, vc);
  gpu.read_moments(mg, vg);
  for (size_t i = 0; i < n; ++i) {
    pc[i] -= start[i];
    pg[i] -= start[i];
  }
  for (const TensorInfo& t : layout.tensors()) {
    expect_close(slice(pg, t), slice(pc, t), tol.update, t.name + " (update)");
    expect_close(slice(mg, t), slice(mc, t), tol.m, t.name + " (AdamW m)");
    expect_close(slice(vg, t), slice(vc, t), tol.v, t.name + " (AdamW v)");
  }
}

std::vector<float> read_params(const ModelBackend& m) {
  std::vector<float> p(m.layout().total());
  m.read_params(p);
  return p;
}

// 12 steps over 3 learnable batches: the GPU's loss per step follows the CPU's, it
// falls well beyond noise, and the parameters and moments end where the CPU's do.
constexpr int kTrainB = 4, kTrainT = 32;
void compare_training(const Pair& p, double loss_tol, const StateTol& tol) {
  const int B = kTrainB, T = kTrainT, steps = 12;
  const int V = p.cpu->config().vocab_size;
  const std::vector<Batch> batches{learnable_batch(B, T, V, 31), learnable_batch(B, T, V, 32),
                                   learnable_batch(B, T, V, 33)};
  const std::vector<float> start = read_params(*p.cpu);
  std::vector<float> lc, lg;
  for (int s = 0; s < steps; ++s) {
    const std::vector<const Batch*> micro{&batches[static_cast<size_t>(s) % batches.size()]};
    lc.push_back(train_step(*p.cpu, micro, s + 1)[0]);
    lg.push_back(train_step(*p.gpu, micro, s + 1)[0]);
    EXPECT_NEAR(lg.back(), lc.back(), loss_tol) << "step " << s + 1;
  }
  // The first and the last pass over the same three batches.
  const auto drop = [](const std::vector<float>& l) { return (l[0] + l[1] + l[2]) - (l[9] + l[10] + l[11]); };
  EXPECT_GT(drop(lc) / 3, kLearnedNats) << "the CPU reference did not learn: the test is broken";
  EXPECT_GT(drop(lg) / 3, kLearnedNats) << "GPU losses from " << lg.front() << " to " << lg.back();
  expect_state_close(*p.gpu, *p.cpu, start, tol);
}

TEST(CudaModel, TwelveAdamWStepsFollowTheCpuFp32) {
  REQUIRE_GPU();
  compare_training(make_cpu_gpu_pair(preset_config("tiny"), CudaPrecision::fp32, kTrainB, kTrainT, 7), 1e-3,
                   {1e-3, 1e-3, 1e-3});
}

TEST(CudaModel, TwelveAdamWStepsFollowTheCpuBf16) {
  REQUIRE_GPU();
  compare_training(make_cpu_gpu_pair(preset_config("tiny"), CudaPrecision::bf16, kTrainB, kTrainT, 7), 3e-2,
                   {0.15, 0.15, 0.15});
}

// The shapes the tiny preset does not reach: a vocabulary that is not a multiple of
// 128 (V = 250, padded to 256), 3 heads of 16 (C = 48), B*T = 300 tokens (more than
// one 256-row chunk of the column reductions; T not a multiple of 32), and gradient
// accumulation: two forward/backward passes, the second on a smaller batch than
// allocated, before one AdamW step.
ModelConfig edge_config() {
  ModelConfig c;
  c.n_layer = 2;
  c.n_head = 3;
  c.n_embd = 48;
  c.n_ctx = 128;
  c.vocab_size = 250;
  c.finalize();
  return c;
}

constexpr int kEdgeB = 3, kEdgeT = 100;
void compare_edge_config(const Pair& p, const ModelTol& tol, const StateTol& state_tol) {
  const ModelConfig& cfg = p.cpu->config();
  ASSERT_EQ(cfg.padded_vocab, 256);
  const int B = kEdgeB, T = kEdgeT, V = cfg.vocab_size, Vp = cfg.padded_vocab;
  const std::vector<float> start = read_params(*p.cpu);
  const Batch full = learnable_batch(B, T, V, 41), part = learnable_batch(2, 77, V, 42);
  const float dloss = 1.0f / static_cast<float>(full.in.size() + part.in.size());
  for (auto* m : {p.cpu.get(), p.gpu.get()}) m->zero_grad();
  for (const Batch* b : {&full, &part}) {
    const std::string what = "micro-batch " + std::to_string(b->B) + "x" + std::to_string(b->T);
    const float lc = p.cpu->forward(b->in.data(), b->tg.data(), b->B, b->T);
    const float lg = p.gpu->forward(b->in.data(), b->tg.data(), b->B, b->T);
    EXPECT_NEAR(lg, lc, tol.loss) << what;
    std::vector<float> a(b->in.size() * static_cast<size_t>(Vp)), g(a.size());
    p.cpu->read_logits(a);
    p.gpu->read_logits(g);
    expect_close(g, a, tol.logits, what + " logits");
    // The padded rows of wte are zero, so are their logits, exactly.
    size_t nonzero = 0;
    for (size_t r = 0; r < b->in.size(); ++r)
      for (int v = V; v < Vp; ++v) nonzero += g[r * Vp + static_cast<size_t>(v)] != 0.0f;
    EXPECT_EQ(nonzero, 0u) << what << ": logits of the padded vocabulary";
    for (auto* m : {p.cpu.get(), p.gpu.get()}) m->backward(dloss);
  }
  expect_grads_close(*p.gpu, *p.cpu, tol.grads);
  std::vector<float> grads(p.gpu->layout().total());
  p.gpu->read_grads(grads);
  const TensorInfo& wte = p.gpu->layout().at("transformer.wte.weight");
  size_t padded_grads = 0;
  for (size_t i = static_cast<size_t>(V) * cfg.n_embd; i < static_cast<size_t>(Vp) * cfg.n_embd; ++i)
    padded_grads += grads[wte.offset + i] != 0.0f;
  EXPECT_EQ(padded_grads, 0u) << "gradient of the padded wte rows";

  for (auto* m : {p.cpu.get(), p.gpu.get()})
    m->adamw_step(comparison_adamw(), kLr, clip_coefficient(m->grad_norm(), 1.0f), 1);
  expect_state_close(*p.gpu, *p.cpu, start, state_tol);
  const float lc = p.cpu->forward(full.in.data(), full.tg.data(), B, T);
  const float lg = p.gpu->forward(full.in.data(), full.tg.data(), B, T);
  EXPECT_NEAR(lg, lc, tol.loss) << "loss after the step";
}

TEST(CudaModel, EdgeShapesWithAccumulationMatchCpuFp32) {
  REQUIRE_GPU();
  compare_edge_config(make_cpu_gpu_pair(edge_config(), CudaPrecision::fp32, kEdgeB, kEdgeT, 11),
                      {1e-4, 1e-4, 1e-4}, {1e-3, 1e-3, 1e-3});
}

TEST(CudaModel, EdgeShapesWithAccumulationMatchCpuBf16) {
  REQUIRE_GPU();
  compare_edge_config(make_cpu_gpu_pair(edge_config(), CudaPrecision::bf16, kEdgeB, kEdgeT, 11),
                      {2e-2, 2e-2, 5e-2}, {0.15, 0.15, 0.15});
}

// Steps of forward, backward, clipping and AdamW on fixed random batches (for the
// resume test: the same steps, whatever they learn).
std::vector<float> train_steps(ModelBackend& m, int steps, int first_step, int B, int T) {
  std::vector<float> losses;
  const int V = m.config().vocab_size;
  for (int s = first_step; s < first_step + steps; ++s) {
    const auto in = random_tokens(size_t(B) * T, V, 100 + s), tg = random_tokens(size_t(B) * T, V, 200 + s);
    m.zero_grad();
    losses.push_back(m.forward(in.data(), tg.data(), B, T));
    m.backward(1.0f / static_cast<float>(B * T));
    m.adamw_step(AdamWConfig{}, 1e-3f, clip_coefficient(m.grad_norm(), 1.0f), s + 1);
  }
  return losses;
}

TEST(CudaModel, SaveReloadContinueIsBitIdentical) {
  REQUIRE_GPU();
  for (CudaPrecision precision : {CudaPrecision::fp32, CudaPrecision::bf16}) {
    const int B = 2, T = 32;
    const ModelConfig cfg = preset_config("tiny");
    auto fresh = [&] {
      auto m = make_cuda_backend(cfg, B, T, precision);
      std::vector<float> p(m->layout().total());
      init_gpt2_params(p, m->layout(), cfg, 3);
      m->write_params(p);
      return m;
    };
    auto straight = fresh();
    const auto all = train_steps(*straight, 6, 0, B, T);
    auto first = fresh();
    train_steps(*first, 3, 0, B, T);
    const size_t n = first->layout().total();
    std::vector<float> p(n), m(n), v(n);
    first->read_params(p);
    first->read_moments(m, v);
    test::TempDir d;
    save_checkpoint(d / "ck", cfg, first->layout(), p, m, v, nlohmann::json{{"step", 3}});
    const CheckpointData ck = load_checkpoint(d / "ck", true);
    auto resumed = make_cuda_backend(ck.cfg, B, T, precision);
    resumed->write_params(ck.params);
    resumed->write_moments(ck.m, ck.v);
    const auto rest = train_steps(*resumed, 3, 3, B, T);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(rest[i], all[3 + i]) << "loss of step " << 4 + i;
    std::vector<float> a(n), b(n);
    straight->read_params(a);
    resumed->read_params(b);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), n * sizeof(float)))
        << "parameters differ after resume (" << (precision == CudaPrecision::fp32 ? "fp32" : "bf16") << ")";
  }
}

}  // namespace
}  // namespace murmur

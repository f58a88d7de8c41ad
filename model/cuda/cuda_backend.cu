// The CUDA backend: the CPU backend's forward, backward and AdamW on the device,
// with the parameters, gradients and moments each in ONE device allocation laid
// out by gpt2_layout() (device spans for compression and gossip). Act is the
// activation and GEMM-operand type: float (fp32 mode) or bf16 (mixed precision,
// with a bf16 copy of the parameters refreshed by every parameter write).
// Everything runs in order on the legacy default stream; calls that return data
// to the host synchronise and surface any earlier asynchronous fault.
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "model/cuda/cuda_backend.h"
#include "model/cuda/cuda_util.h"
#include "model/cuda/gemm.h"
#include "model/cuda/ops.h"

namespace murmur {

int cuda_device_count(std::string* why_none) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    if (why_none) *why_none = std::string("no CUDA device visible: ") + cudaGetErrorString(err);
    return 0;
  }
  if (n == 0 && why_none) *why_none = "no CUDA device visible";
  return n;
}

namespace {

using cuda::bf16;
using cuda::check;
using cuda::DeviceArray;

template <class Act>
class CudaBackend final : public ModelBackend {
  static constexpr bool kLowPrecision = std::is_same_v<Act, bf16>;

 public:
  CudaBackend(const ModelConfig& cfg, int max_batch, int max_context)
      : cfg_(cfg), layout_(gpt2_layout(cfg)), max_B_(max_batch), max_T_(max_context) {
    cfg_.validate();
    if (max_batch < 1) throw std::invalid_argument("batch size must be at least 1");
    if (max_context < 1 || max_context > cfg.n_ctx)
      throw std::invalid_argument("context " + std::to_string(max_context) + " must be in 1.." +
                                  std::to_string(cfg.n_ctx) + " (the model's n_ctx)");
    const size_t L = cfg_.n_layer, C = cfg_.n_embd, NH = cfg_.n_head, T = max_T_;
    bt_ = static_cast<size_t>(max_B_) * max_T_;
    att_stride_ = static_cast<size_t>(max_B_) * NH * T * T;
    const size_t n = layout_.total();
    params_ = DeviceArray<float>(n);
    grads_ = DeviceArray<float>(n);
    m_ = DeviceArray<float>(n);
    v_ = DeviceArray<float>(n);
    for (auto* a : {&params_, &grads_, &m_, &v_}) zero(*a);
    if constexpr (kLowPrecision) {
      params_low_ = DeviceArray<bf16>(n);
      zero(params_low_);
    }
    p_ = bind_tensors(layout_, cfg_, params_.get());
    g_ = bind_tensors(layout_, cfg_, grads_.get());

    encoded_ = DeviceArray<Act>(bt_ * C);
    ln1_ = DeviceArray<Act>(L * bt_ * C);
    qkv_ = DeviceArray<Act>(L * bt_ * 3 * C);
    att_ = DeviceArray<Act>(L * att_stride_);
    atty_ = DeviceArray<Act>(L * bt_ * C);
    res2_ = DeviceArray<Act>(L * bt_ * C);
    ln2_ = DeviceArray<Act>(L * bt_ * C);
    fch_ = DeviceArray<Act>(L * bt_ * 4 * C);
    fchg_ = DeviceArray<Act>(L * bt_ * 4 * C);
    res3_ = DeviceArray<Act>(L * bt_ * C);
    lnf_ = DeviceArray<Act>(bt_ * C);
    logits_ = DeviceArray<Act>(bt_ * cfg_.padded_vocab);
    for (auto* s : {&ln1_mean_, &ln1_rstd_, &ln2_mean_, &ln2_rstd_}) *s = DeviceArray<float>(L * bt_);
    for (auto* s : {&lnf_mean_, &lnf_rstd_, &losses_, &lse_}) *s = DeviceArray<float>(bt_);
    dresid_ = DeviceArray<Act>(bt_ * C);
    dbuf_ = DeviceArray<Act>(bt_ * C);
    dfch_ = DeviceArray<Act>(bt_ * 4 * C);
    dqkv_ = DeviceArray<Act>(bt_ * 3 * C);
    scores_ = DeviceArray<float>(NH * T * T);
    dscores_ = DeviceArray<Act>(NH * T * T);
    columns_ = DeviceArray<float>(cuda::column_scratch_floats(bt_, 4 * cfg_.n_embd));
    norm_partials_ = DeviceArray<double>(cuda::kSumSquaresPartials);
    inputs_ = DeviceArray<int32_t>(bt_);
    targets_ = DeviceArray<int32_t>(bt_);
    groups_ = DeviceArray<int32_t>(3 * bt_ + 1);

    std::vector<cuda::AdamWTensor> table;
    for (const TensorInfo& t : layout_.tensors()) {
      table.push_back({t.offset, t.numel, t.decay ? 1 : 0});
      max_numel_ = std::max(max_numel_, t.numel);
    }
    adamw_table_ = DeviceArray<cuda::AdamWTensor>(table.size());
    adamw_table_.upload(table.data(), table.size());
  }

  const ModelConfig& config() const override { return cfg_; }
  const ParamLayout& layout() const override { return layout_; }
  Device device() const override { return Device::cuda; }
  int max_batch() const override { return max_B_; }
  int max_context() const override { return max_T_; }

  void read_params(std::span<float> out) const override { copy_out(params_, out, "params"); }
  void write_params(std::span<const float> in) override {
    copy_in(in, params_, "params");
    if constexpr (kLowPrecision) cuda::convert(params_low_.get(), params_.get(), params_.size());
  }
  void read_grads(std::span<float> out) const override { copy_out(grads_, out, "grads"); }
  void write_grads(std::span<const float> in) override { copy_in(in, grads_, "grads"); }
  void read_moments(std::span<float> m, std::span<float> v) const override {
    copy_out(m_, m, "m");
    copy_out(v_, v, "v");
  }
  void write_moments(std::span<const float> m, std::span<const float> v) override {
    copy_in(m, m_, "m");
    copy_in(v, v_, "v");
  }
  void read_logits(std::span<float> out) const override;

  float forward(const int32_t* inputs, const int32_t* targets, int B, int T) override;
  void zero_grad() override { zero(grads_); }
  void backward(float dloss) override;
  double grad_norm() override {
    return std::sqrt(cuda::sum_squares(grads_.get(), grads_.size(), norm_partials_.get()));
  }
  void adamw_step(const AdamWConfig& c, float lr, float grad_scale, int64_t t) override;

 private:
  // GEMM operands: the fp32 parameters themselves, or their bf16 copy at the same offset.
  const Act* W(const float* p) const {
    if constexpr (kLowPrecision)
      return params_low_.get() + (p - params_.get());
    else
      return p;
  }
  // Layer l's slice of a stacked activation of `width` values per token.
  template <class X>
  X* layer(const DeviceArray<X>& a, int l, size_t width) const {
    return a.get() + static_cast<size_t>(l) * bt_ * width;
  }
  Act* att(int l) const { return att_.get() + static_cast<size_t>(l) * att_stride_; }

  template <class X>
  static void zero(DeviceArray<X>& a) {
    check(cudaMemset(a.get(), 0, a.size() * sizeof(X)), "cudaMemset");
  }
  static void copy_out(const DeviceArray<float>& src, std::span<float> out, const char* what) {
    if (out.size() != src.size())
      throw std::invalid_argument(std::string("read_") + what + ": expected " + std::to_string(src.size()) +
                                  " floats, got " + std::to_string(out.size()));
    src.download(out.data(), out.size());
  }
  static void copy_in(std::span<const float> in, DeviceArray<float>& dst, const char* what) {
    if (in.size() != dst.size())
      throw std::invalid_argument(std::string("write_") + what + ": expected " + std::to_string(dst.size()) +
                                  " floats, got " + std::to_string(in.size()));
    dst.upload(in.data(), in.size());
  }

  ModelConfig cfg_;
  ParamLayout layout_;
  int max_B_, max_T_;
  size_t bt_ = 0, att_stride_ = 0, max_numel_ = 0;
  cuda::Gemm gemm_;
  DeviceArray<float> params_, grads_, m_, v_;
  DeviceArray<bf16> params_low_;  // bf16 mode: the parameters rounded for the GEMMs
  ModelTensors p_, g_;            // device pointers into params_ and grads_
  // Activations, per layer stacked (L, B, T, width) as on the CPU; the residual
  // adds are fused into the projection GEMMs, so only their sums are kept.
  DeviceArray<Act> encoded_, ln1_, qkv_, att_, atty_, res2_, ln2_, fch_, fchg_, res3_, lnf_, logits_;
  DeviceArray<float> ln1_mean_, ln1_rstd_, ln2_mean_, ln2_rstd_, lnf_mean_, lnf_rstd_, losses_, lse_;
  // Backward: the residual-stream gradient, a (B, T, C) and the wider per-layer gradients.
  DeviceArray<Act> dresid_, dbuf_, dfch_, dqkv_;
  DeviceArray<float> scores_;  // attention scores in forward, their gradient in backward
  DeviceArray<Act> dscores_;
  DeviceArray<float> columns_;
  DeviceArray<double> norm_partials_;
  DeviceArray<int32_t> inputs_, targets_, groups_;
  DeviceArray<cuda::AdamWTensor> adamw_table_;
  int B_ = 0, T_ = 0, group_count_ = 0;
  bool have_targets_ = false;
};

template <class Act>
float CudaBackend<Act>::forward(const int32_t* inputs, const int32_t* targets, int B, int T) {
  if (B < 1 || B > max_B_ || T < 1 || T > max_T_)
    throw std::invalid_argument("forward: batch " + std::to_string(B) + "x" + std::to_string(T) +
                                " exceeds the allocated " + std::to_string(max_B_) + "x" +
                                std::to_string(max_T_));
  const int V = cfg_.vocab_size, Vp = cfg_.padded_vocab, C = cfg_.n_embd, NH = cfg_.n_head;
  const size_t BT = static_cast<size_t>(B) * T;
  for (size_t i = 0; i < BT; ++i) {
    if (inputs[i] < 0 || inputs[i] >= V || (targets && (targets[i] < 0 || targets[i] >= V)))
      throw std::invalid_argument("forward: token id out of range [0, " + std::to_string(V) + ")");
  }
  have_targets_ = false;
  B_ = B;
  T_ = T;
  inputs_.upload(inputs, BT);
  if (targets) targets_.upload(targets, BT);
  const cuda::TokenGroups groups = cuda::group_tokens(inputs, BT, V);  // for the embedding backward
  groups_.upload(groups.packed.data(), groups.packed.size());
  group_count_ = groups.count;

  cuda::encoder_forward(encoded_.get(), inputs_.get(), p_.wte, p_.wpe, B, T, C);
  const Act* residual = encoded_.get();
  for (int l = 0; l < cfg_.n_layer; ++l) {
    const BlockTensors& w = p_.blocks[l];
    Act* ln1 = layer(ln1_, l, C);
    Act* qkv = layer(qkv_, l, 3 * C);
    Act* atty = layer(atty_, l, C);
    Act* res2 = layer(res2_, l, C);
    Act* ln2 = layer(ln2_, l, C);
    Act* fch = layer(fch_, l, 4 * C);
    Act* fchg = layer(fchg_, l, 4 * C);
    Act* res3 = layer(res3_, l, C);
    cuda::layernorm_forward(ln1, layer(ln1_mean_, l, 1), layer(ln1_rstd_, l, 1), residual, w.ln1_w, w.ln1_b,
                            BT, C);
    cuda::matmul_forward(gemm_, qkv, ln1, W(w.qkv_w), W(w.qkv_b), static_cast<const Act*>(nullptr), BT, C,
                         3 * C);
    cuda::attention_forward(gemm_, atty, att(l), qkv, scores_.get(), B, T, C, NH);
    cuda::matmul_forward(gemm_, res2, atty, W(w.attn_w), W(w.attn_b), residual, BT, C, C);
    cuda::layernorm_forward(ln2, layer(ln2_mean_, l, 1), layer(ln2_rstd_, l, 1), res2, w.ln2_w, w.ln2_b, BT,
                            C);
    cuda::matmul_forward(gemm_, fch, ln2, W(w.fc_w), W(w.fc_b), static_cast<const Act*>(nullptr), BT, C,
                         4 * C);
    cuda::gelu_forward(fchg, fch, BT * 4 * C);
    cuda::matmul_forward(gemm_, res3, fchg, W(w.proj_w), W(w.proj_b), res2, BT, 4 * C, C);
    residual = res3;
  }
  cuda::layernorm_forward(lnf_.get(), lnf_mean_.get(), lnf_rstd_.get(), residual, p_.lnf_w, p_.lnf_b, BT, C);
  cuda::lm_head_forward(gemm_, logits_.get(), lnf_.get(), W(p_.wte), BT, C, Vp);
  if (!targets) {
    check(cudaDeviceSynchronize(), "forward");
    return 0.0f;
  }
  cuda::crossentropy_forward(losses_.get(), lse_.get(), logits_.get(), targets_.get(), BT, V, Vp);
  std::vector<float> losses(BT);
  losses_.download(losses.data(), BT);
  double total = 0.0;  // in token order, as the CPU
  for (float l : losses) total += l;
  have_targets_ = true;
  return static_cast<float>(total / static_cast<double>(BT));
}

template <class Act>
void CudaBackend<Act>::backward(float dloss) {
  if (!have_targets_) throw std::logic_error("backward() needs a preceding forward() with targets");
  const int B = B_, T = T_, C = cfg_.n_embd, NH = cfg_.n_head, V = cfg_.vocab_size, Vp = cfg_.padded_vocab;
  const int L = cfg_.n_layer;
  const size_t BT = static_cast<size_t>(B) * T;
  float* cols = columns_.get();
  Act* dresid = dresid_.get();  // d(residual stream), accumulated layer by layer
  Act* dbuf = dbuf_.get();
  Act* dfch = dfch_.get();
  Act* dqkv = dqkv_.get();

  cuda::crossentropy_backward(logits_.get(), lse_.get(), targets_.get(), BT, V, Vp, dloss);
  have_targets_ = false;  // logits now hold their gradient
  cuda::lm_head_backward(gemm_, dbuf, g_.wte, logits_.get(), lnf_.get(), W(p_.wte), BT, C, Vp);
  check(cudaMemset(dresid, 0, BT * C * sizeof(Act)), "cudaMemset");
  cuda::layernorm_backward(dresid, g_.lnf_w, g_.lnf_b, dbuf, layer(res3_, L - 1, C), p_.lnf_w,
                           lnf_mean_.get(), lnf_rstd_.get(), BT, C, cols);
  for (int l = L - 1; l >= 0; --l) {
    const BlockTensors& w = p_.blocks[l];
    const BlockTensors& gw = g_.blocks[l];
    const Act* residual = l == 0 ? encoded_.get() : layer(res3_, l - 1, C);
    // dresid holds d(res3); res3 = res2 + fcproj passes it unchanged to both.
    cuda::matmul_backward(gemm_, dfch, gw.proj_w, gw.proj_b, dresid, layer(fchg_, l, 4 * C), W(w.proj_w), BT,
                          4 * C, C, cols);
    cuda::gelu_backward(dfch, layer(fch_, l, 4 * C), dfch, BT * 4 * C);
    cuda::matmul_backward(gemm_, dbuf, gw.fc_w, gw.fc_b, dfch, layer(ln2_, l, C), W(w.fc_w), BT, C, 4 * C,
                          cols);
    cuda::layernorm_backward(dresid, gw.ln2_w, gw.ln2_b, dbuf, layer(res2_, l, C), w.ln2_w,
                             layer(ln2_mean_, l, 1), layer(ln2_rstd_, l, 1), BT, C, cols);
    // dresid now holds d(res2); res2 = residual + attproj.
    cuda::matmul_backward(gemm_, dbuf, gw.attn_w, gw.attn_b, dresid, layer(atty_, l, C), W(w.attn_w), BT, C,
                          C, cols);
    cuda::attention_backward(gemm_, dqkv, dbuf, layer(qkv_, l, 3 * C), att(l), scores_.get(), dscores_.get(),
                             B, T, C, NH);
    cuda::matmul_backward(gemm_, dbuf, gw.qkv_w, gw.qkv_b, dqkv, layer(ln1_, l, C), W(w.qkv_w), BT, C, 3 * C,
                          cols);
    cuda::layernorm_backward(dresid, gw.ln1_w, gw.ln1_b, dbuf, residual, w.ln1_w, layer(ln1_mean_, l, 1),
                             layer(ln1_rstd_, l, 1), BT, C, cols);
  }
  cuda::encoder_backward(g_.wte, g_.wpe, dresid, groups_.get(), group_count_, B, T, C);
}

template <class Act>
void CudaBackend<Act>::adamw_step(const AdamWConfig& c, float lr, float grad_scale, int64_t t) {
  // The scalars as model/adamw.cpp computes them, on the host in float.
  cuda::AdamWArgs a{};
  a.beta1 = c.beta1;
  a.beta2 = c.beta2;
  a.eps = c.eps;
  a.decay_factor = 1.0f - lr * c.weight_decay;
  a.step_size = lr / (1.0f - std::pow(c.beta1, static_cast<float>(t)));
  a.bc2_sqrt = std::sqrt(1.0f - std::pow(c.beta2, static_cast<float>(t)));
  a.grad_scale = grad_scale;
  bf16* low = nullptr;
  if constexpr (kLowPrecision) low = params_low_.get();
  cuda::adamw_update(params_.get(), m_.get(), v_.get(), grads_.get(), low, adamw_table_.get(),
                     static_cast<int>(layout_.tensors().size()), max_numel_, a);
}

template <class Act>
void CudaBackend<Act>::read_logits(std::span<float> out) const {
  const size_t n = static_cast<size_t>(B_) * T_ * cfg_.padded_vocab;
  if (out.size() != n) throw std::invalid_argument("read_logits: wrong output size");
  if constexpr (kLowPrecision) {
    std::vector<bf16> low(n);
    logits_.download(low.data(), n);
    for (size_t i = 0; i < n; ++i) out[i] = __bfloat162float(low[i]);
  } else {
    logits_.download(out.data(), n);
  }
}

}  // namespace

std::unique_ptr<ModelBackend> make_cuda_backend(const ModelConfig& cfg, int max_batch, int max_context,
                                                CudaPrecision precision) {
  std::string why;
  if (cuda_device_count(&why) == 0) throw std::runtime_error("--device cuda: " + why);
  if (precision == CudaPrecision::fp32)
    return std::make_unique<CudaBackend<float>>(cfg, max_batch, max_context);
  return std::make_unique<CudaBackend<bf16>>(cfg, max_batch, max_context);
}

}  // namespace murmur

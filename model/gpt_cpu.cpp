#include "model/gpt_cpu.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/adamw.h"
#include "model/cpu_ops.h"

namespace murmur {

namespace {

// Activations of one forward pass, sized for (max_batch, max_context). Layer
// tensors are stacked, e.g. qkv is (L, B, T, 3C). The same struct holds the
// activation gradients during backward.
struct Activations {
  size_t BT = 0;
  std::vector<float> encoded;                  // (B, T, C)
  std::vector<float> ln1, ln1_mean, ln1_rstd;  // (L, B, T, C), (L, B, T)
  std::vector<float> qkv;                      // (L, B, T, 3C)
  std::vector<float> atty;                     // (L, B, T, C)
  std::vector<float> att;                      // (L, B, NH, T, T) softmax probabilities
  std::vector<float> attproj;                  // (L, B, T, C)
  std::vector<float> residual2;                // (L, B, T, C)
  std::vector<float> ln2, ln2_mean, ln2_rstd;
  std::vector<float> fch, fch_gelu;  // (L, B, T, 4C)
  std::vector<float> fcproj;         // (L, B, T, C)
  std::vector<float> residual3;      // (L, B, T, C)
  std::vector<float> lnf, lnf_mean, lnf_rstd;
  std::vector<float> logits;       // (B, T, Vp); becomes dlogits in backward
  std::vector<float> losses, lse;  // (B, T)
  std::vector<float> att_scratch;  // (threads, T, T) for attention backward

  void allocate(const ModelConfig& c, int B, int T, int threads, bool for_grads) {
    const size_t L = c.n_layer, C = c.n_embd;
    BT = static_cast<size_t>(B) * T;
    encoded.assign(BT * C, 0.0f);
    ln1.assign(L * BT * C, 0.0f);
    qkv.assign(L * BT * 3 * C, 0.0f);
    atty.assign(L * BT * C, 0.0f);
    attproj.assign(L * BT * C, 0.0f);
    residual2.assign(L * BT * C, 0.0f);
    ln2.assign(L * BT * C, 0.0f);
    fch.assign(L * BT * 4 * C, 0.0f);
    fch_gelu.assign(L * BT * 4 * C, 0.0f);
    fcproj.assign(L * BT * C, 0.0f);
    residual3.assign(L * BT * C, 0.0f);
    lnf.assign(BT * C, 0.0f);
    if (for_grads) return;  // gradients of the statistics, att and logits are never materialised
    ln1_mean.assign(L * BT, 0.0f);
    ln1_rstd.assign(L * BT, 0.0f);
    ln2_mean.assign(L * BT, 0.0f);
    ln2_rstd.assign(L * BT, 0.0f);
    lnf_mean.assign(BT, 0.0f);
    lnf_rstd.assign(BT, 0.0f);
    att.assign(L * static_cast<size_t>(B) * c.n_head * T * T, 0.0f);
    logits.assign(BT * c.padded_vocab, 0.0f);
    losses.assign(BT, 0.0f);
    lse.assign(BT, 0.0f);
    att_scratch.assign(static_cast<size_t>(threads) * T * T, 0.0f);
  }

  void zero() {
    for (auto* v : {&encoded, &ln1, &qkv, &atty, &attproj, &residual2, &ln2, &fch, &fch_gelu, &fcproj,
                    &residual3, &lnf})
      std::fill(v->begin(), v->end(), 0.0f);
  }
};

class CpuBackend final : public ModelBackend {
  static constexpr int64_t kActivationsPerThread = 1 << 16;

 public:
  CpuBackend(const ModelConfig& cfg, int max_batch, int max_context, int threads)
      : cfg_(cfg), layout_(gpt2_layout(cfg)), max_B_(max_batch), max_T_(max_context), threads_(threads) {
    cfg_.validate();
    if (max_batch < 1) throw std::invalid_argument("batch size must be at least 1");
    if (max_context < 1 || max_context > cfg.n_ctx)
      throw std::invalid_argument("context " + std::to_string(max_context) + " must be in 1.." +
                                  std::to_string(cfg.n_ctx) + " (the model's n_ctx)");
    if (threads_ <= 0) threads_ = omp_get_num_procs();
    // Below ~64K activations per layer a parallel region costs more than it saves:
    // the tiny preset (8 x 64 x 32) ran 2x slower on 2 threads than on 1. The
    // count depends only on the shapes, so runs stay bit-reproducible.
    const int64_t acts = int64_t{max_batch} * max_context * cfg.n_embd;
    threads_ = static_cast<int>(std::clamp<int64_t>(acts / kActivationsPerThread, 1, threads_));
    apply_threads();
    const size_t n = layout_.total();
    params_.assign(n, 0.0f);
    grads_.assign(n, 0.0f);
    m_.assign(n, 0.0f);
    v_.assign(n, 0.0f);
    acts_.allocate(cfg_, max_B_, max_T_, threads_, false);
    dacts_.allocate(cfg_, max_B_, max_T_, threads_, true);
    p_ = bind_tensors(layout_, cfg_, params_.data());
    g_ = bind_tensors(layout_, cfg_, grads_.data());
  }

  const ModelConfig& config() const override { return cfg_; }
  const ParamLayout& layout() const override { return layout_; }
  Device device() const override { return Device::cpu; }
  int max_batch() const override { return max_B_; }
  int max_context() const override { return max_T_; }

  void read_params(std::span<float> out) const override { copy_out(params_, out, "params"); }
  void write_params(std::span<const float> in) override { copy_in(in, params_, "params"); }
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
  void read_logits(std::span<float> out) const override {
    const size_t n = static_cast<size_t>(B_) * T_ * cfg_.padded_vocab;
    if (out.size() != n) throw std::invalid_argument("read_logits: wrong output size");
    std::copy(acts_.logits.begin(), acts_.logits.begin() + n, out.begin());
  }

  float forward(const int32_t* inputs, const int32_t* targets, int B, int T) override;
  void zero_grad() override { std::fill(grads_.begin(), grads_.end(), 0.0f); }
  void backward(float dloss) override;
  double grad_norm() override { return std::sqrt(cpu::sum_squares(grads_.data(), grads_.size())); }
  void adamw_step(const AdamWConfig& c, float lr, float grad_scale, int64_t t) override {
    apply_threads();
    adamw_update_cpu(params_.data(), m_.data(), v_.data(), grads_.data(), layout_, c, lr, grad_scale, t);
  }

 private:
  // Thread settings are per calling thread in OpenMP, so they are re-applied on
  // every entry point that computes (the trainer may run on another thread).
  void apply_threads() const {
    omp_set_num_threads(threads_);
    openblas_set_num_threads(threads_);
  }
  void copy_out(const std::vector<float>& src, std::span<float> out, const char* what) const {
    if (out.size() != src.size())
      throw std::invalid_argument(std::string("read_") + what + ": expected " + std::to_string(src.size()) +
                                  " floats, got " + std::to_string(out.size()));
    std::copy(src.begin(), src.end(), out.begin());
  }
  static void copy_in(std::span<const float> in, std::vector<float>& dst, const char* what) {
    if (in.size() != dst.size())
      throw std::invalid_argument(std::string("write_") + what + ": expected " + std::to_string(dst.size()) +
                                  " floats, got " + std::to_string(in.size()));
    std::copy(in.begin(), in.end(), dst.begin());
  }

  ModelConfig cfg_;
  ParamLayout layout_;
  int max_B_, max_T_, threads_;
  std::vector<float> params_, grads_, m_, v_;
  ModelTensors p_, g_;
  Activations acts_, dacts_;
  std::vector<int32_t> inputs_, targets_;
  int B_ = 0, T_ = 0;
  bool have_targets_ = false;
};

float CpuBackend::forward(const int32_t* inputs, const int32_t* targets, int B, int T) {
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
  apply_threads();
  B_ = B;
  T_ = T;
  inputs_.assign(inputs, inputs + BT);
  have_targets_ = targets != nullptr;
  if (have_targets_) targets_.assign(targets, targets + BT);

  Activations& a = acts_;
  // Layer l's slices; sizes use the actual BT so the buffers stay dense.
  const size_t stride_c = BT * C, stride_att = static_cast<size_t>(B) * NH * T * T;
  cpu::encoder_forward(a.encoded.data(), inputs, p_.wte, p_.wpe, B, T, C);
  const float* residual = a.encoded.data();
  for (int l = 0; l < cfg_.n_layer; ++l) {
    const BlockTensors& w = p_.blocks[l];
    float* ln1 = a.ln1.data() + l * stride_c;
    float* qkv = a.qkv.data() + l * 3 * stride_c;
    float* atty = a.atty.data() + l * stride_c;
    float* attproj = a.attproj.data() + l * stride_c;
    float* res2 = a.residual2.data() + l * stride_c;
    float* ln2 = a.ln2.data() + l * stride_c;
    float* fch = a.fch.data() + l * 4 * stride_c;
    float* fchg = a.fch_gelu.data() + l * 4 * stride_c;
    float* fcproj = a.fcproj.data() + l * stride_c;
    float* res3 = a.residual3.data() + l * stride_c;
    cpu::layernorm_forward(ln1, a.ln1_mean.data() + l * BT, a.ln1_rstd.data() + l * BT, residual, w.ln1_w,
                           w.ln1_b, BT, C);
    cpu::matmul_forward(qkv, ln1, w.qkv_w, w.qkv_b, BT, C, 3 * C);
    cpu::attention_forward(atty, a.att.data() + l * stride_att, qkv, B, T, C, NH);
    cpu::matmul_forward(attproj, atty, w.attn_w, w.attn_b, BT, C, C);
    cpu::residual_forward(res2, residual, attproj, stride_c);
    cpu::layernorm_forward(ln2, a.ln2_mean.data() + l * BT, a.ln2_rstd.data() + l * BT, res2, w.ln2_w,
                           w.ln2_b, BT, C);
    cpu::matmul_forward(fch, ln2, w.fc_w, w.fc_b, BT, C, 4 * C);
    cpu::gelu_forward(fchg, fch, 4 * stride_c);
    cpu::matmul_forward(fcproj, fchg, w.proj_w, w.proj_b, BT, 4 * C, C);
    cpu::residual_forward(res3, res2, fcproj, stride_c);
    residual = res3;
  }
  cpu::layernorm_forward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), residual, p_.lnf_w, p_.lnf_b, BT,
                         C);
  cpu::lm_head_forward(a.logits.data(), a.lnf.data(), p_.wte, BT, C, Vp);
  if (!targets) return 0.0f;
  return static_cast<float>(
      cpu::crossentropy_forward(a.losses.data(), a.lse.data(), a.logits.data(), targets, BT, V, Vp));
}

void CpuBackend::backward(float dloss) {
  if (!have_targets_) throw std::logic_error("backward() needs a preceding forward() with targets");
  apply_threads();
  const int B = B_, T = T_, C = cfg_.n_embd, NH = cfg_.n_head, V = cfg_.vocab_size, Vp = cfg_.padded_vocab;
  const size_t BT = static_cast<size_t>(B) * T;
  const size_t stride_c = BT * C, stride_att = static_cast<size_t>(B) * NH * T * T;
  Activations& a = acts_;
  Activations& d = dacts_;
  d.zero();

  cpu::crossentropy_backward_inplace(a.logits.data(), a.lse.data(), targets_.data(), BT, V, Vp, dloss);
  have_targets_ = false;  // logits now hold their gradient
  cpu::lm_head_backward(d.lnf.data(), g_.wte, a.logits.data(), a.lnf.data(), p_.wte, BT, C, Vp);
  const float* last_res = a.residual3.data() + (cfg_.n_layer - 1) * stride_c;
  float* dlast_res = d.residual3.data() + (cfg_.n_layer - 1) * stride_c;
  cpu::layernorm_backward(dlast_res, g_.lnf_w, g_.lnf_b, d.lnf.data(), last_res, p_.lnf_w, a.lnf_mean.data(),
                          a.lnf_rstd.data(), BT, C);

  for (int l = cfg_.n_layer - 1; l >= 0; --l) {
    const BlockTensors& w = p_.blocks[l];
    const BlockTensors& gw = g_.blocks[l];
    const float* residual = l == 0 ? a.encoded.data() : a.residual3.data() + (l - 1) * stride_c;
    float* dresidual = l == 0 ? d.encoded.data() : d.residual3.data() + (l - 1) * stride_c;
    const size_t o1 = l * stride_c, o3 = 3 * o1, o4 = 4 * o1;
    float* dres3 = d.residual3.data() + o1;
    // res3 = res2 + fcproj: the gradient flows unchanged into both.
    float* dres2 = d.residual2.data() + o1;
    std::memcpy(dres2, dres3, stride_c * sizeof(float));
    cpu::matmul_backward(d.fch_gelu.data() + o4, gw.proj_w, gw.proj_b, dres3, a.fch_gelu.data() + o4,
                         w.proj_w, BT, 4 * C, C);
    cpu::gelu_backward(d.fch.data() + o4, a.fch.data() + o4, d.fch_gelu.data() + o4, 4 * stride_c);
    cpu::matmul_backward(d.ln2.data() + o1, gw.fc_w, gw.fc_b, d.fch.data() + o4, a.ln2.data() + o1, w.fc_w,
                         BT, C, 4 * C);
    cpu::layernorm_backward(dres2, gw.ln2_w, gw.ln2_b, d.ln2.data() + o1, a.residual2.data() + o1, w.ln2_w,
                            a.ln2_mean.data() + l * BT, a.ln2_rstd.data() + l * BT, BT, C);
    // res2 = residual + attproj.
    float* dres = dresidual;
    cpu::residual_forward(dres, dres, dres2, stride_c);
    cpu::matmul_backward(d.atty.data() + o1, gw.attn_w, gw.attn_b, dres2, a.atty.data() + o1, w.attn_w, BT, C,
                         C);
    cpu::attention_backward(d.qkv.data() + o3, d.atty.data() + o1, a.qkv.data() + o3,
                            a.att.data() + l * stride_att, B, T, C, NH, a.att_scratch.data());
    cpu::matmul_backward(d.ln1.data() + o1, gw.qkv_w, gw.qkv_b, d.qkv.data() + o3, a.ln1.data() + o1, w.qkv_w,
                         BT, C, 3 * C);
    cpu::layernorm_backward(dres, gw.ln1_w, gw.ln1_b, d.ln1.data() + o1, residual, w.ln1_w,
                            a.ln1_mean.data() + l * BT, a.ln1_rstd.data() + l * BT, BT, C);
  }
  cpu::encoder_backward(g_.wte, g_.wpe, d.encoded.data(), inputs_.data(), B, T, C);
}

}  // namespace

std::unique_ptr<ModelBackend> make_cpu_backend(const ModelConfig& cfg, int max_batch, int max_context,
                                               int threads) {
  return std::make_unique<CpuBackend>(cfg, max_batch, max_context, threads);
}

}  // namespace murmur

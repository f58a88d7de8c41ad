#include "model/trainer.h"

#include <chrono>
#include <stdexcept>

namespace murmur {

Trainer::Trainer(ModelBackend& model, const TokenDataset& train, const TrainOptions& opt)
    : model_(model), opt_(opt) {
  if (opt.grad_accum < 1) throw std::invalid_argument("grad_accum must be at least 1");
  if (opt.streams < 1 || opt.streams > 1u << 16) throw std::invalid_argument("streams must be in 1..65536");
  for (uint32_t s = 0; s < opt.streams; ++s)
    loaders_.emplace_back(train, opt.batch, opt.context, opt.seed, opt.peer + s);
  if (train.vocab_size() > model.config().vocab_size)
    throw std::invalid_argument("the data's vocabulary (" + std::to_string(train.vocab_size()) +
                                ") is larger than the model's (" + std::to_string(model.config().vocab_size) +
                                ")");
  const size_t n = static_cast<size_t>(opt.batch) * opt.context;
  inputs_.resize(n);
  targets_.resize(n);
}

StepStats Trainer::step() {
  const auto t0 = std::chrono::steady_clock::now();
  const int B = opt_.batch, T = opt_.context;
  const int micro_batches = opt_.grad_accum * static_cast<int>(loaders_.size());
  const float dloss = 1.0f / (static_cast<float>(B) * T * static_cast<float>(micro_batches));
  model_.zero_grad();
  double loss = 0.0;
  for (int micro = 0; micro < opt_.grad_accum; ++micro) {
    for (DataLoader& loader : loaders_) {
      loader.next_batch(inputs_.data(), targets_.data());
      loss += model_.forward(inputs_.data(), targets_.data(), B, T);
      model_.backward(dloss);
    }
  }
  if (opt_.reduce_grads) opt_.reduce_grads(model_);
  StepStats s;
  s.loss = static_cast<float>(loss / micro_batches);
  s.grad_norm = model_.grad_norm();
  s.lr = opt_.lr.at(step_);
  ++step_;
  model_.adamw_step(opt_.adamw, s.lr, clip_coefficient(s.grad_norm, opt_.clip), step_);
  s.step = step_;
  s.tokens = static_cast<int64_t>(B) * T * micro_batches;
  tokens_ += s.tokens;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

nlohmann::json Trainer::state() const {
  const LoaderPosition p = loaders_[0].position();
  nlohmann::json s = {{"step", step_},         {"tokens", tokens_}, {"data_epoch", p.epoch},
                      {"data_index", p.index}, {"seed", opt_.seed}, {"peer", opt_.peer}};
  if (loaders_.size() > 1) {
    nlohmann::json streams = nlohmann::json::array();
    for (const DataLoader& l : loaders_) streams.push_back({l.position().epoch, l.position().index});
    s["data_streams"] = streams;
  }
  return s;
}

void Trainer::restore(const nlohmann::json& s) {
  auto get = [&](const char* k) {
    if (!s.contains(k) || !s[k].is_number_integer())
      throw std::runtime_error(std::string("trainer state: missing or invalid '") + k + "'");
    return s[k].get<int64_t>();
  };
  if (static_cast<uint64_t>(get("seed")) != opt_.seed || get("peer") != opt_.peer)
    throw std::runtime_error(
        "trainer state: seed/peer differ from the run's, the data stream would not resume");
  const int64_t step = get("step"), tokens = get("tokens");
  std::vector<LoaderPosition> at = {
      {static_cast<uint64_t>(get("data_epoch")), static_cast<uint64_t>(get("data_index"))}};
  if (loaders_.size() > 1) {
    const nlohmann::json none;
    const nlohmann::json& streams = s.contains("data_streams") ? s.at("data_streams") : none;
    if (!streams.is_array() || streams.size() != loaders_.size())
      throw std::runtime_error("trainer state: 'data_streams' must list " + std::to_string(loaders_.size()) +
                               " positions");
    at.clear();
    for (size_t k = 0; k < streams.size(); ++k) {
      const nlohmann::json& p = streams[k];
      if (!p.is_array() || p.size() != 2 || !p[0].is_number_unsigned() || !p[1].is_number_unsigned())
        throw std::runtime_error("trainer state: a 'data_streams' entry is not [epoch, index]");
      at.push_back({p[0].get<uint64_t>(), p[1].get<uint64_t>()});
    }
  }
  for (size_t k = 0; k < loaders_.size(); ++k) loaders_[k].seek(at[k]);
  step_ = step;
  tokens_ = tokens;
}

EvalResult evaluate(ModelBackend& model, size_t total_tokens,
                    const std::function<void(size_t, size_t, int32_t*)>& copy, int T, size_t max_windows) {
  const size_t W = static_cast<size_t>(T) + 1;
  size_t windows = total_tokens / W;
  if (max_windows > 0 && windows > max_windows) windows = max_windows;
  if (windows == 0)
    throw std::invalid_argument("evaluation needs at least " + std::to_string(W) + " tokens, got " +
                                std::to_string(total_tokens));
  const size_t maxB = static_cast<size_t>(model.max_batch());
  std::vector<int32_t> win(W), inputs(maxB * T), targets(maxB * T);
  double sum = 0.0;
  for (size_t w0 = 0; w0 < windows; w0 += maxB) {
    const size_t B = std::min(maxB, windows - w0);
    for (size_t b = 0; b < B; ++b) {
      copy((w0 + b) * W, W, win.data());
      std::copy(win.begin(), win.end() - 1, inputs.begin() + static_cast<std::ptrdiff_t>(b * T));
      std::copy(win.begin() + 1, win.end(), targets.begin() + static_cast<std::ptrdiff_t>(b * T));
    }
    const float mean = model.forward(inputs.data(), targets.data(), static_cast<int>(B), T);
    sum += static_cast<double>(mean) * static_cast<double>(B * T);
  }
  const size_t tokens = windows * T;
  return {sum / static_cast<double>(tokens), tokens};
}

}  // namespace murmur

// Single-replica training: micro-batches from the data loader, gradient
// accumulation, global-norm clipping, the LR schedule and AdamW. The peer
// process (gossip) drives the same Trainer for its inner steps.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/adamw.h"
#include "model/backend.h"
#include "model/data_loader.h"

namespace murmur {

struct TrainOptions {
  int batch = 8;
  int context = 64;
  int grad_accum = 1;
  LrSchedule lr;
  AdamWConfig adamw;
  float clip = 1.0f;  // max global gradient norm; <= 0 disables
  uint64_t seed = 1337;
  uint32_t peer = 0;
  // Data streams per step: peers peer .. peer + streams - 1 each give every accumulation step one
  // micro-batch. With streams = P one replica takes the steps of synchronous data parallelism over P
  // peers (all of them hold the same model), as the algorithm lab's all-reduce baseline does.
  uint32_t streams = 1;
  // Called after the gradients are accumulated and before clipping and the
  // update: synchronous data parallelism averages them across peers here.
  std::function<void(ModelBackend&)> reduce_grads;
};

struct StepStats {
  int64_t step = 0;  // 1-based number of the step just taken
  float loss = 0.0f;
  float lr = 0.0f;
  double grad_norm = 0.0;
  double seconds = 0.0;
  int64_t tokens = 0;  // tokens in this step
};

class Trainer {
 public:
  Trainer(ModelBackend& model, const TokenDataset& train, const TrainOptions& opt);

  StepStats step();
  int64_t steps_done() const { return step_; }
  int64_t tokens_done() const { return tokens_; }

  // The resumable part of the state (step, tokens, data position, seed, peer);
  // the checkpoint adds the model and moments.
  nlohmann::json state() const;
  void restore(const nlohmann::json& state);  // throws naming a missing/invalid field

 private:
  ModelBackend& model_;
  TrainOptions opt_;
  std::vector<DataLoader> loaders_;  // one per stream
  std::vector<int32_t> inputs_, targets_;
  int64_t step_ = 0;
  int64_t tokens_ = 0;
};

struct EvalResult {
  double loss = 0.0;  // mean next-token cross-entropy, nats
  size_t tokens = 0;  // number of predicted tokens
};

// Mean loss over consecutive non-overlapping windows of T+1 tokens (a last
// partial window is dropped), at most max_windows of them (0 = all), in
// batches of model.max_batch(). copy(start, n, out) reads tokens of the stream.
EvalResult evaluate(ModelBackend& model, size_t total_tokens,
                    const std::function<void(size_t, size_t, int32_t*)>& copy, int T, size_t max_windows);

}  // namespace murmur

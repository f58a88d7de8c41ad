// The model side of a peer, derived from its PeerArgs alone: the model config, the context length and
// the local training options. `murmur node` (node/peer_train.cpp) and the simulator's model objective
// (node/sim_model.h) build their trainers from these, so a simulated peer trains as a real one does.
#pragma once

#include "model/config.h"
#include "model/trainer.h"
#include "node/peer_args.h"

namespace murmur {

ModelConfig peer_model_config(const PeerArgs& a);
int peer_context(const PeerArgs& a, const ModelConfig& cfg);  // --context, else the model's n_ctx
// Batch, context, the LR schedule over --steps (warmup default: 5 % of them), AdamW, clipping, and the
// seed and peer index that choose the data stream. No reduce_grads: allreduce adds its own.
TrainOptions peer_train_options(const PeerArgs& a, int context);

}  // namespace murmur

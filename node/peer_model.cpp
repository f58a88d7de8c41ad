#include "node/peer_model.h"

#include <algorithm>

namespace murmur {

ModelConfig peer_model_config(const PeerArgs& a) {
  ModelConfig cfg = preset_config(a.preset);
  cfg.finalize();
  return cfg;
}

int peer_context(const PeerArgs& a, const ModelConfig& cfg) { return a.context > 0 ? a.context : cfg.n_ctx; }

TrainOptions peer_train_options(const PeerArgs& a, int context) {
  TrainOptions o;
  o.batch = a.batch;
  o.context = context;
  o.lr = {a.lr, a.min_lr_frac, a.warmup >= 0 ? a.warmup : std::max<int64_t>(1, a.steps / 20), a.steps};
  o.adamw.weight_decay = a.weight_decay;
  o.clip = a.clip;
  o.seed = a.seed;
  o.peer = a.peer_index;
  return o;
}

}  // namespace murmur

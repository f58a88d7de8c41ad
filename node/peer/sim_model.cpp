#include "node/peer/sim_model.h"

#include <cmath>
#include <stdexcept>

#include "model/backend.h"
#include "model/config.h"
#include "model/init.h"
#include "model/token_shard.h"
#include "model/trainer.h"
#include "node/run/options.h"

namespace murmur::peer {

PeerArgs parse_training_table(const std::vector<std::pair<std::string, std::string>>& training,
                              const std::string& source) {
  PeerArgs a;
  CLI::App app("[training]");
  add_peer_options(app, a);
  std::vector<std::string> words = {"murmur-node"};
  for (const auto& [key, value] : training) {
    if (key == "base_tokens_per_s") continue;
    words.push_back("--" + key + "=" + value);  // `=`: flags take true/false too
  }
  std::vector<const char*> argv;
  for (const std::string& w : words) argv.push_back(w.c_str());
  try {
    app.parse(int(argv.size()), argv.data());
    a.model.config();  // throws naming the known presets, or a bad shape
  } catch (const CLI::ParseError& e) {
    throw std::invalid_argument(source + ": [training]: " + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": [training]: " + e.what());
  }
  return a;
}

PeerArgs peer_args_from_training(const std::vector<std::pair<std::string, std::string>>& training,
                                 const std::string& source) {
  PeerArgs a = parse_training_table(training, source);
  if (a.data.empty())
    throw std::invalid_argument(source + ": [training] data: the model objective needs a data directory");
  if (a.train.steps < a.inner_steps) throw std::invalid_argument(source + ": [training] steps < inner-steps");
  return a;
}

namespace {

class ModelObjective final : public netem::SimObjective {
 public:
  ModelObjective(const PeerArgs& a, size_t peers)
      : a_(a),
        cfg_(a.model.config()),
        context_(a.batch.context_for(cfg_)),
        train_(a.data, "train"),
        val_(a.data, "val"),
        eval_(make_backend(parse_device(a.device.kind), cfg_, a.batch.batch, context_, a.device.threads)),
        replicas_(peers) {}

  size_t dim() const override { return eval_->layout().total(); }
  std::vector<float> initial() override {
    std::vector<float> theta(dim());
    init_gpt2_params(theta, eval_->layout(), cfg_, a_.train.seed);  // as PeerTraining::initialise
    return theta;
  }
  void local_steps(size_t peer, std::span<float> theta, int64_t first, int64_t count) override {
    steps(replica(peer), theta, first, count);
  }
  // One replica reads every peer's stream: the steps all `allreduce` peers take together.
  void data_parallel_steps(std::span<float> theta, int64_t first, int64_t count) override {
    if (!all_.model) all_ = make_replica(0, uint32_t(replicas_.size()));
    steps(all_, theta, first, count);
  }
  double peer_loss(size_t peer, std::span<const float> theta) override {
    const double last = replicas_.at(peer).round_loss;
    return std::isnan(last) ? loss(theta) : last;  // NaN: no round yet
  }
  double loss(std::span<const float> theta) override {
    eval_->write_params(theta);
    return evaluate(
               *eval_, val_.size(), [&](size_t s, size_t k, int32_t* o) { val_.copy(s, k, o); }, context_,
               static_cast<size_t>(a_.eval_windows))
        .loss;
  }
  std::string loss_name() const override { return "loss (nats/token)"; }

 private:
  struct Replica {
    std::unique_ptr<ModelBackend> model;
    std::unique_ptr<Trainer> trainer;
    double round_loss = std::nan("");
  };
  Replica make_replica(uint32_t peer, uint32_t streams) {
    Replica r;
    r.model = make_backend(parse_device(a_.device.kind), cfg_, a_.batch.batch, context_, a_.device.threads);
    TrainOptions o = a_.train.trainer(a_.batch, context_, peer);
    o.streams = streams;
    r.trainer = std::make_unique<Trainer>(*r.model, train_, o);
    return r;
  }
  Replica& replica(size_t peer) {  // built on first use: peers that never start cost nothing
    Replica& r = replicas_.at(peer);
    if (!r.model) r = make_replica(uint32_t(peer), 1);
    return r;
  }
  // `count` steps of `r` from theta, from step `first` of the LR schedule (a peer that adopted a running
  // swarm's state continues the schedule there, as PeerTraining does).
  void steps(Replica& r, std::span<float> theta, int64_t first, int64_t count) {
    const int64_t at = std::min<int64_t>(first, a_.train.steps - 1);
    if (r.trainer->steps_done() < at) {
      nlohmann::json st = r.trainer->state();
      st["step"] = at;
      r.trainer->restore(st);
    }
    r.model->write_params(theta);
    double sum = 0;
    int64_t n = 0;
    for (int64_t k = 0; k < count && r.trainer->steps_done() < a_.train.steps; ++k, ++n) {
      const StepStats s = r.trainer->step();
      run::check_loss(s);
      sum += s.loss;
    }
    r.model->read_params(theta);
    if (n > 0) r.round_loss = sum / double(n);
  }

  PeerArgs a_;
  ModelConfig cfg_;
  int context_;
  TokenDataset train_, val_;
  std::unique_ptr<ModelBackend> eval_;
  std::vector<Replica> replicas_;  // one per scenario peer
  Replica all_;                    // every peer's stream (data_parallel_steps)
};

}  // namespace

std::unique_ptr<netem::SimObjective> make_model_objective(const PeerArgs& args, size_t peers) {
  return std::make_unique<ModelObjective>(args, peers);
}

}  // namespace murmur::peer

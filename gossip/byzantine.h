// Byzantine neighbours, for the attack suite (the lab, `murmur node --byzantine`, scenarios): a hostile
// peer runs an honest RoundDriver, so it trains, mixes and keeps mirrors of its neighbours like anyone,
// and an Adversary rewrites what the driver sends. Each attack chooses the copy T that a receiver's
// mirror of the attacker should hold; the Adversary tracks that mirror per link (the snapshot the link
// started with, then every forged increment) and sends the exact fp32 increment T − mirror, so the
// attack is what it says whatever the codec. The attacks (as in BTARD, Gorbunov et al. 2022):
//   sign-flip   T = M − s·v          v: the honest increment, s = 1000 by default
//   random      T = M + s·rms(v)·N(0, 1) per value
//   stale       the round-0 delta again every round (with its old round number)
//   nan         the honest increment with NaN in it
//   snapshot    a full snapshot of −s·θ̂ instead of each delta
//   alie        T = μ − s·σ per value over its own and its neighbours' copies (A Little Is Enough; s = 1)
//   ipm         T = M − s·v with a small s (inner-product manipulation; s = 0.5): passes norm checks
// Threading: one thread, with the driver it forges for.
#pragma once

#include <boost/container/flat_map.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gossip/round_driver.h"
#include "model/rng.h"

namespace murmur::gossip {

enum class Attack : uint8_t { sign_flip, random, stale, nan, snapshot, alie, ipm };
// "sign-flip", "random", ...; throws std::invalid_argument naming the choices.
Attack parse_attack(const std::string& text);
const char* to_string(Attack a);
const std::vector<Attack>& all_attacks();

struct AttackConfig {
  Attack kind = Attack::sign_flip;
  double scale = 0;  // s above; 0 = the attack's default
};

class Adversary {
 public:
  Adversary(AttackConfig cfg, uint64_t seed);

  // What is sent instead of `s.msg`, which `driver` (this peer's own) produced for link (s.to, s.epoch).
  std::shared_ptr<const TrainMessage> forge(const RoundDriver& driver, const SendTrain& s);

 private:
  struct Mirror {
    uint64_t epoch = 0;
    std::vector<float> value;  // what the receiver holds as our public copy
  };
  // T for a delta whose honest increment is v, given the receiver's mirror M.
  std::vector<float> target(const RoundDriver& driver, const std::vector<float>& mirror,
                            const std::vector<float>& v);

  AttackConfig cfg_;
  SplitMix64 rng_;
  boost::container::flat_map<PeerId, Mirror, IdLess> mirrors_;
  std::shared_ptr<const TrainMessage> first_delta_;  // stale
};

}  // namespace murmur::gossip

// What makes peers members of one run: the settings that must agree between any two peers that link. A
// peer started with another model, seed or algorithm would link and then have every delta refused as
// malformed (another element count) or, worse, accepted and mixed into a model of another shape of
// training; so Hello and Welcome carry the whole identity and the membership messages that introduce a
// peer or open a link carry its digest (docs/membership.md, "Runs").
//
// Not in it, because peers need not agree on them: the gossip codec (every payload names its codec in
// its own header and compress::decode reads any of them, as --round-budget-s already changes codecs per
// round), the consensus step size and the aggregation rule (each peer's own mixing), batch, learning rate
// and data stream (each peer's local training).
#pragma once

#include <cstdint>
#include <string>

namespace murmur::gossip {

inline constexpr size_t kMaxAlgoLen = 16;  // "gossip", "diloco", "allreduce", "local"

struct RunIdentity {
  // The model's shape: another one has another parameter count.
  uint32_t n_layer = 0, n_head = 0, n_embd = 0, n_ctx = 0, vocab_size = 0;
  uint64_t seed = 0;   // the initialisation (--seed): every replica starts from one point
  std::string algo{};  // gossip | diloco | allreduce | local
  // The round schedule (gossip::RoundSchedule): a round number must mean the same steps everywhere.
  // The warm-up is its length in steps (--sync-warmup × --steps), not the share, since peers with other
  // --steps and one share would disagree; without a warm-up its round length is 0 (it changes nothing).
  uint64_t inner_steps = 0, warmup_steps = 0, warmup_inner_steps = 0;
  double outer_lr = 0, outer_momentum = 0;  // finite
  bool outer_after_mix = false;
  friend bool operator==(const RunIdentity&, const RunIdentity&) = default;
};

// A 64-bit digest of every field (BLAKE2b of a fixed little-endian encoding), the same on every machine:
// equal identities have equal digests, and any difference changes it (but for a 2^-64 chance).
uint64_t run_digest(const RunIdentity& r);

// Every field that differs, with both values: "model n_layer: 2 here, 4 there; seed: 7 here, 1 there".
// Empty when the identities are equal.
std::string run_differences(const RunIdentity& here, const RunIdentity& there);

}  // namespace murmur::gossip

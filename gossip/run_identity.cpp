#include "gossip/run_identity.h"

#include <sodium.h>

#include <array>
#include <bit>
#include <charconv>
#include <stdexcept>
#include <vector>

namespace murmur::gossip {

namespace {

// -0.0 == 0.0, so both hash alike: equal identities must have equal digests.
uint64_t bits(double x) { return std::bit_cast<uint64_t>(x == 0 ? 0.0 : x); }

void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

std::string text(double x) {  // the shortest form that reads back as x: 0.7 and 0.70000001 differ
  std::array<char, 32> buf;
  return std::string(buf.data(), std::to_chars(buf.data(), buf.data() + buf.size(), x).ptr);
}
std::string text(uint64_t x) { return std::to_string(x); }
std::string text(const std::string& x) { return x.empty() ? "(none)" : x; }
std::string text(bool after_mix) { return after_mix ? "after the mix" : "before the mix"; }

}  // namespace

uint64_t run_digest(const RunIdentity& r) {
  // Fixed-width little-endian fields after a version tag, the string length-prefixed: one encoding per
  // identity, whatever the machine.
  std::vector<uint8_t> b = {'m', 'u', 'r', 'm', 'u', 'r', '.', 'r', 'u', 'n', '.', '1'};
  for (uint64_t v : {uint64_t{r.n_layer}, uint64_t{r.n_head}, uint64_t{r.n_embd}, uint64_t{r.n_ctx},
                     uint64_t{r.vocab_size}, r.seed, uint64_t{r.algo.size()}})
    put_u64(b, v);
  b.insert(b.end(), r.algo.begin(), r.algo.end());
  for (uint64_t v : {r.inner_steps, r.warmup_steps, r.warmup_inner_steps, bits(r.outer_lr),
                     bits(r.outer_momentum), uint64_t{r.outer_after_mix}})
    put_u64(b, v);
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  std::array<uint8_t, crypto_generichash_BYTES_MIN> h;
  crypto_generichash(h.data(), h.size(), b.data(), b.size(), nullptr, 0);
  uint64_t d = 0;
  for (int i = 0; i < 8; ++i) d |= uint64_t{h[size_t(i)]} << (8 * i);
  return d;
}

std::string run_differences(const RunIdentity& here, const RunIdentity& there) {
  std::string out;
  auto field = [&](const char* name, const auto& a, const auto& b) {
    if (a == b) return;
    out += (out.empty() ? "" : "; ") + std::string(name) + ": " + text(a) + " here, " + text(b) + " there";
  };
  field("model n_layer", uint64_t{here.n_layer}, uint64_t{there.n_layer});
  field("model n_head", uint64_t{here.n_head}, uint64_t{there.n_head});
  field("model n_embd", uint64_t{here.n_embd}, uint64_t{there.n_embd});
  field("model n_ctx", uint64_t{here.n_ctx}, uint64_t{there.n_ctx});
  field("model vocab", uint64_t{here.vocab_size}, uint64_t{there.vocab_size});
  field("seed", here.seed, there.seed);
  field("algo", here.algo, there.algo);
  field("inner steps", here.inner_steps, there.inner_steps);
  field("sync warm-up steps", here.warmup_steps, there.warmup_steps);
  field("sync warm-up inner steps", here.warmup_inner_steps, there.warmup_inner_steps);
  field("outer lr", here.outer_lr, there.outer_lr);
  field("outer momentum", here.outer_momentum, there.outer_momentum);
  field("outer step", here.outer_after_mix, there.outer_after_mix);
  return out;
}

}  // namespace murmur::gossip

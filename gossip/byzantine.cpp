#include "gossip/byzantine.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "compress/codec.h"
#include "compress/wire.h"

namespace murmur::gossip {

namespace {

struct AttackInfo {
  Attack kind;
  const char* name;
  double default_scale;
};
constexpr AttackInfo kAttacks[] = {
    {Attack::sign_flip, "sign-flip", 1000},
    {Attack::random, "random", 1000},
    {Attack::stale, "stale", 0},
    {Attack::nan, "nan", 0},
    {Attack::snapshot, "snapshot", 1000},
    {Attack::alie, "alie", 1},
    {Attack::ipm, "ipm", 0.5},
};

const AttackInfo& info(Attack a) {
  for (const AttackInfo& i : kAttacks)
    if (i.kind == a) return i;
  throw std::invalid_argument("unknown attack");
}

std::vector<uint8_t> fp32(std::span<const float> x) { return compress::Encoder("fp32").encode(x); }

std::shared_ptr<const TrainMessage> message(Delta d) {
  return std::make_shared<const TrainMessage>(std::move(d));
}

}  // namespace

Attack parse_attack(const std::string& text) {
  std::string names;
  for (const AttackInfo& i : kAttacks) {
    if (text == i.name) return i.kind;
    names += names.empty() ? i.name : std::string(", ") + i.name;
  }
  throw std::invalid_argument("attack must be one of " + names + "; got '" + text + "'");
}

const char* to_string(Attack a) { return info(a).name; }

const std::vector<Attack>& all_attacks() {
  static const std::vector<Attack> all = [] {
    std::vector<Attack> v;
    for (const AttackInfo& i : kAttacks) v.push_back(i.kind);
    return v;
  }();
  return all;
}

Adversary::Adversary(AttackConfig cfg, uint64_t seed) : cfg_(cfg), rng_(mix64(seed ^ 0xbad)) {
  if (!std::isfinite(cfg_.scale) || cfg_.scale < 0) throw std::invalid_argument("attack scale must be >= 0");
  if (cfg_.scale == 0) cfg_.scale = info(cfg_.kind).default_scale;
}

std::vector<float> Adversary::target(const RoundDriver& driver, const std::vector<float>& mirror,
                                     const std::vector<float>& v) {
  const size_t n = v.size();
  const double s = cfg_.scale;
  std::vector<float> t(mirror);
  switch (cfg_.kind) {
    case Attack::sign_flip:
    case Attack::ipm:
      for (size_t k = 0; k < n; ++k) t[k] -= static_cast<float>(s * v[k]);
      break;
    case Attack::random: {
      double ss = 0;
      for (const float x : v) ss += double(x) * x;
      const double rms = std::sqrt(ss / double(std::max<size_t>(n, 1)));
      for (size_t k = 0; k < n; ++k) t[k] += static_cast<float>(s * rms * rng_.normal());
      break;
    }
    case Attack::alie: {
      // The values the attacker sees: its honest copy and its neighbours'.
      std::vector<std::span<const float>> seen{driver.consensus().public_copy()};
      for (const PeerId& peer : driver.consensus().synced_links())
        if (auto c = driver.consensus().link_copy(peer)) seen.push_back(*c);
      const double m = double(seen.size());
      for (size_t k = 0; k < n; ++k) {
        double sum = 0, sq = 0;
        for (const auto& c : seen) {
          sum += c[k];
          sq += double(c[k]) * c[k];
        }
        const double mean = sum / m, var = std::max(0.0, sq / m - mean * mean);
        t[k] = static_cast<float>(mean - s * std::sqrt(var));
      }
      break;
    }
    default:
      throw std::logic_error("target: not a targeted attack");
  }
  return t;
}

std::shared_ptr<const TrainMessage> Adversary::forge(const RoundDriver& driver, const SendTrain& s) {
  const Delta* d = std::get_if<Delta>(s.msg.get());
  if (d == nullptr) return s.msg;  // resync requests go as they are
  const size_t n = driver.consensus().size();
  if (d->snapshot) {
    // The link (re)starts from this snapshot: the receiver's mirror is what it says.
    Mirror& m = mirrors_[s.to];
    m.epoch = s.epoch;
    m.value.resize(n);
    if (d->codec_payload.empty()) {
      const auto pc = driver.consensus().public_copy();  // by digest: the shared start
      m.value.assign(pc.begin(), pc.end());
    } else {
      compress::decode(d->codec_payload, m.value);
    }
    return s.msg;
  }
  if (cfg_.kind == Attack::stale) {
    if (!first_delta_) first_delta_ = s.msg;
    return first_delta_;
  }
  auto it = mirrors_.find(s.to);
  if (it == mirrors_.end() || it->second.epoch != s.epoch) return s.msg;  // no snapshot seen: cannot aim
  std::vector<float>& mirror = it->second.value;
  std::vector<float> v(n);
  compress::decode(d->codec_payload, v);
  Delta out{
      .round = d->round, .degree = d->degree, .snapshot = false, .codec_payload = {}, .state_digest = {}};
  if (cfg_.kind == Attack::nan) {
    out.codec_payload = fp32(v);
    const float q = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(out.codec_payload.data() + compress::kHeaderBytes, &q, sizeof q);
    return message(std::move(out));  // refused: the mirror stays as it was
  }
  if (cfg_.kind == Attack::snapshot) {
    std::vector<float> poison(driver.consensus().public_copy().begin(),
                              driver.consensus().public_copy().end());
    for (float& x : poison) x = static_cast<float>(-cfg_.scale * x);
    out.snapshot = true;
    out.round = d->round + 1;  // counts as this round's delta, so the receiver mixes it at once
    out.codec_payload = fp32(poison);
    mirror = std::move(poison);
    return message(std::move(out));
  }
  const std::vector<float> t = target(driver, mirror, v);
  std::vector<float> inc(n);
  for (size_t k = 0; k < n; ++k) inc[k] = t[k] - mirror[k];
  try {
    out.codec_payload = fp32(inc);
  } catch (const std::domain_error&) {  // overflow: the honest increment goes instead
    for (size_t k = 0; k < n; ++k) mirror[k] += v[k];
    return s.msg;
  }
  for (size_t k = 0; k < n; ++k) mirror[k] += inc[k];  // as the receiver adds it
  return message(std::move(out));
}

}  // namespace murmur::gossip

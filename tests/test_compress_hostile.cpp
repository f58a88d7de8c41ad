// The decoder against hostile input: targeted malformed payloads with the expected
// error, and a deterministic fuzz-style run over random and mutated payloads (the same
// check as the libFuzzer target in tests/fuzz/, short enough for every test run).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "compress/codec.h"
#include "tests/compress_data.h"
#include "tests/compress_fuzz_one.h"

namespace murmur::compress::testing {
namespace {

std::string decode_error(std::span<const uint8_t> q, size_t n) {
  std::vector<float> out(n, 0.0f);
  try {
    decode_accumulate(q, out, 1.0f);
  } catch (const DecodeError& e) {
    return e.what();
  }
  return "";
}

void put_f32(std::vector<uint8_t>& q, size_t at, float v) { std::memcpy(q.data() + at, &v, 4); }
void put_u64(std::vector<uint8_t>& q, size_t at, uint64_t v) { std::memcpy(q.data() + at, &v, 8); }

TEST(CompressHostile, TargetedMalformedPayloads) {
  const std::vector<float> x = gaussian(1000, 1);
  const std::vector<uint8_t> int8 = Encoder("int8").encode(x);
  EXPECT_NE(decode_error({}, 1000).find("truncated"), std::string::npos);
  EXPECT_NE(decode_error(int8, 999).find("carries 1000 elements, expected 999"), std::string::npos);
  auto mutated = [&](std::vector<uint8_t> q, auto&& fn) {
    fn(q);
    return q;
  };
  EXPECT_NE(decode_error(mutated(int8, [](auto& q) { q[0] = 'X'; }), 1000).find("bad magic"), std::string::npos);
  EXPECT_NE(decode_error(mutated(int8, [](auto& q) { q[4] = 9; }), 1000).find("unsupported payload version"),
            std::string::npos);
  EXPECT_NE(decode_error(mutated(int8, [](auto& q) { q[5] = 99; }), 1000).find("unknown codec id 99"),
            std::string::npos);
  EXPECT_NE(decode_error(mutated(int8, [](auto& q) { put_f32(q, 24 + 4 * 3, NAN); }), 1000).find("scale"),
            std::string::npos);
  EXPECT_NE(decode_error(mutated(int8, [](auto& q) { put_f32(q, 24, 3e38f); }), 1000).find("huge scale"),
            std::string::npos);
  EXPECT_NE(decode_error(mutated(int8, [](auto& q) { q.pop_back(); }), 1000).find("codes"), std::string::npos);
  EXPECT_NE(decode_error(mutated(int8, [](auto& q) { q.push_back(0); }), 1000).find("trailing"), std::string::npos);

  std::vector<uint8_t> fp16 = Encoder("fp16").encode(x);
  fp16[16 + 2 * 500 + 1] = 0x7c;  // exponent 31: infinity
  EXPECT_NE(decode_error(fp16, 1000).find("NaN or infinity"), std::string::npos);

  const std::vector<uint8_t> topk = Encoder("topk:fraction=0.05").encode(x);
  EXPECT_NE(decode_error(mutated(topk, [](auto& q) { put_u64(q, 16, 5000); }), 1000).find("exceeds"),
            std::string::npos);
  EXPECT_NE(decode_error(mutated(topk, [](auto& q) { put_u64(q, 16, uint64_t(1) << 62); }), 1000).find("exceeds"),
            std::string::npos);
  EXPECT_NE(decode_error(mutated(topk, [](auto& q) { put_f32(q, 32, INFINITY); }), 1000).find("NaN, infinity"),
            std::string::npos);
  EXPECT_FALSE(decode_error(mutated(topk, [](auto& q) { q.resize(q.size() - 3); }), 1000).empty());

  const std::vector<uint8_t> randk = Encoder("randk:fraction=0.05").encode(x, seeded(4));
  EXPECT_NE(decode_error(mutated(randk, [](auto& q) { q[16] ^= 1; }), 1000).find("its seed selects"),
            std::string::npos);
  EXPECT_NE(decode_error(mutated(randk, [](auto& q) { std::memset(q.data() + 24, 0, 4); }), 1000).find("threshold"),
            std::string::npos);
  // A huge value that overflows once scaled by 1/p.
  EXPECT_NE(decode_error(mutated(randk, [](auto& q) { put_f32(q, 48, 3e37f); }), 1000).find("overflowing"),
            std::string::npos);

  const DeltaLike d = delta_like(1);
  const std::vector<uint8_t> psgd = Encoder("powersgd:rank=2").encode(d.x, seeded(0, d.layout));
  EXPECT_TRUE(decode_error(psgd, d.x.size()).empty());
  EXPECT_NE(decode_error(mutated(psgd, [](auto& q) { q[23] = 0x7f; }), d.x.size()).find("truncated"),
            std::string::npos);  // a huge matrix count: the table runs past the end
  EXPECT_NE(decode_error(mutated(psgd, [&](auto& q) { put_u64(q, 24 + 16, d.layout[0].offset); }), d.x.size())
                .find("overlapping"),
            std::string::npos);
}

// Random bytes, random bytes behind a valid header, and valid payloads of every codec
// with random bit flips, byte overwrites, truncations and extensions.
TEST(CompressHostile, FuzzStyleRun) {
  const DeltaLike d = delta_like(2, 1, 8);
  const size_t n = d.x.size();
  std::vector<std::vector<uint8_t>> seeds;
  for (const char* s : {"fp32", "fp16", "bf16", "int8:block=16", "int4:stochastic", "int2:block=8", "sign:block=32",
                        "topk:fraction=0.05", "topk:fraction=0.3,approx", "randk:fraction=0.1",
                        "randk:fraction=0.02,unscaled", "powersgd:rank=2", "powersgd:rank=1,fallback=int8"}) {
    seeds.push_back(Encoder(s).encode(d.x, seeded(3, d.layout)));
  }
  std::mt19937_64 rng(2024);
  auto pick = [&](size_t m) { return size_t(rng() % m); };
  const auto t0 = std::chrono::steady_clock::now();
  const int iterations = 100000;
  int accepted = 0;
  for (int it = 0; it < iterations; ++it) {
    std::vector<uint8_t> q;
    const int kind = it % 8;
    if (kind == 0) {  // pure noise
      q.resize(pick(64));
      for (uint8_t& b : q) b = uint8_t(rng());
    } else if (kind == 1) {  // a valid header with a random codec, then noise
      q = seeds[pick(seeds.size())];
      q.resize(16 + pick(96));
      q[5] = uint8_t(1 + pick(10));
      for (size_t i = 16; i < q.size(); ++i) q[i] = uint8_t(rng());
    } else {  // mutations of a valid payload
      q = seeds[pick(seeds.size())];
      const int edits = 1 + int(pick(4));
      for (int e = 0; e < edits; ++e) {
        switch (pick(5)) {
          case 0: q[pick(q.size())] ^= uint8_t(1u << pick(8)); break;
          case 1: q[pick(q.size())] = uint8_t(rng()); break;
          case 2: q.resize(pick(q.size() + 1)); break;
          case 3: q.push_back(uint8_t(rng())); break;
          default: {  // overwrite an aligned 32-bit field with a hostile value
            const uint32_t vals[] = {0, 1, 0x7f800000u, 0x7fc00000u, 0xffffffffu, 0x80000000u, 0x00800000u};
            if (q.size() >= 4) {
              const size_t at = pick(q.size() / 4) * 4;
              std::memcpy(q.data() + at, &vals[pick(7)], 4);
            }
          }
        }
        if (q.empty()) break;
      }
    }
    accepted += decode_one(q, n) ? 1 : 0;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  %d payloads in %.2f s, %d accepted (all finite), the rest rejected with DecodeError\n", iterations,
              secs, accepted);
  EXPECT_GT(accepted, 1000);  // the mutations must also exercise the decode paths, not only the checks
}

}  // namespace
}  // namespace murmur::compress::testing

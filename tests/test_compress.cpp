// The mathematics of the codecs, on every device: round-trip error bounds, contraction
// of the biased codecs, unbiasedness of randk and stochastic rounding, error feedback,
// wire size against the information-theoretic payload, determinism.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "compress/codec.h"
#include "compress/codec_math.h"
#include "compress/codec_spec.h"
#include "compress/error_feedback.h"
#include "tests/compress_data.h"
#include "tests/compress_devices.h"

namespace murmur::compress::testing {
namespace {

class CompressMath : public ::testing::TestWithParam<DeviceKind> {
 protected:
  void SetUp() override { MURMUR_REQUIRE_DEVICE(GetParam()); }
  std::vector<float> round_trip(Encoder& enc, std::span<const float> x, const EncodeOptions& opt = {}) {
    const std::vector<uint8_t> q = encode_on(GetParam(), enc, x, opt);
    std::vector<float> y(x.size(), 0.0f);
    decode_accumulate_on(GetParam(), q, y, 1.0f);
    return y;
  }
};

struct Bound {
  const char* spec;
  double gaussian;  // bound on |x - D(C(x))| / |x|
  double delta;     // the same on model-delta-like data
};

// Bounds: fp16/bf16 by their unit roundoff (2^-11, 2^-8); intB by the measured error
// plus margin (uniform rounding error of step absmax/qmax per block); sign by
// sqrt(1 - 2/pi) = 0.603 for Gaussians (mean-|x| scale is L2-optimal); topk by the
// energy outside the largest 1% (Gaussian: 0.95 relative norm); int2 by the measured
// 0.44 of its 4-level absmax grid with a least-squares scale. PowerSGD rank 4 of
// rank-2-plus-noise matrices. Measured values are printed by the test.
const Bound kBounds[] = {
    {"fp32", 0.0, 0.0},
    {"fp16", 4.9e-4, 6e-4},
    {"bf16", 3.9e-3, 3.9e-3},
    {"int8:block=64", 0.0065, 0.0080},
    {"int8:block=64,stochastic", 0.0110, 0.0140},
    {"int4:block=64", 0.115, 0.16},
    {"int4:block=64,stochastic", 0.20, 0.24},
    {"int2:block=64", 0.45, 0.52},
    {"sign:block=256", 0.605, 0.70},
    {"topk:fraction=0.01", 0.96, 0.90},
    {"topk:fraction=0.01,approx", 0.965, 0.92},
    {"topk:fraction=0.1", 0.75, 0.60},
    {"randk:fraction=0.1,unscaled", 0.955, 0.96},
};

TEST_P(CompressMath, RelativeErrorWithinStatedBound) {
  const std::vector<float> g = gaussian((1 << 16) + 123, 1);
  const DeltaLike d = delta_like(2);
  for (const Bound& b : kBounds) {
    Encoder enc(b.spec);
    const double eg = diff_norm(g, round_trip(enc, g, seeded(7))) / norm(g);
    const double ed = diff_norm(d.x, round_trip(enc, d.x, seeded(7))) / norm(d.x);
    std::printf("  %-30s gaussian %.6f  delta-like %.6f\n", b.spec, eg, ed);
    EXPECT_LE(eg, b.gaussian) << b.spec;
    EXPECT_LE(ed, b.delta) << b.spec;
  }
}

TEST_P(CompressMath, PowerSgdErrorAndWarmStart) {
  const DeltaLike d = delta_like(3);
  Encoder enc("powersgd:rank=4");
  std::vector<double> err;
  for (int round = 0; round < 4; ++round) {
    const std::vector<float> y = round_trip(enc, d.x, seeded(9, d.layout));
    err.push_back(diff_norm(d.x, y) / norm(d.x));
  }
  std::printf("  powersgd:rank=4 delta-like error by round: %.4f %.4f %.4f %.4f\n", err[0], err[1], err[2],
              err[3]);
  EXPECT_LE(err.back(), err.front() + 1e-6);  // warm start: power iteration converges
  EXPECT_LE(err.back(), 0.35);                // rank-2 signal + Student-t noise at 0.3

  // An exactly rank-2 matrix is reconstructed once the subspace is found.
  std::vector<float> m(64 * 48);
  for (size_t i = 0; i < 64; ++i) {
    for (size_t j = 0; j < 48; ++j)
      m[i * 48 + j] = float(std::sin(0.1 * i) * std::cos(0.3 * j) + 0.01 * i * j / 48.0);
  }
  const MatrixView whole{0, 64, 48};
  Encoder exact("powersgd:rank=2,fallback=fp32");
  std::vector<float> y;
  for (int round = 0; round < 3; ++round) y = round_trip(exact, m, seeded(1, {&whole, 1}));
  EXPECT_LE(diff_norm(m, y) / norm(m), 1e-5);
}

// Deterministic biased codecs are contractions: |x - D(C(x))|^2 <= (1 - delta) |x|^2 with
// delta = 1/block for int8/int4 (the block's largest element is exact and rounding to a
// level never moves a value further than 0 does); for the least-squares scale of int2 and
// sign delta = <x,l>^2 / (|l|^2 |x|^2) >= |x|_1^2 / (max|l|^2 block |x|^2) >= 1 / (9 block),
// 1 / block; k/n for topk; 0 for PowerSGD (a projection).
TEST_P(CompressMath, BiasedCodecsContract) {
  const DeltaLike d = delta_like(4);
  std::vector<float> spiky(4096, 1e-3f), constant(4097, 0.25f), zeros(1000, 0.0f);
  for (size_t i = 0; i < spiky.size(); i += 61) spiky[i] = 10.0f;
  const std::vector<std::vector<float>> inputs = {gaussian(10007, 5), d.x, spiky, constant, zeros};
  struct Case {
    const char* spec;
    double delta;
  };
  const Case cases[] = {{"int8:block=64", 1.0 / 64},         {"int4:block=32", 1.0 / 32},
                        {"int2:block=64", 1.0 / (9 * 64)},   {"sign:block=256", 1.0 / 256},
                        {"topk:fraction=0.05", 0.05 - 1e-4}, {"topk:fraction=0.05,approx", 0.0}};
  for (const Case& c : cases) {
    for (const std::vector<float>& x : inputs) {
      Encoder enc(c.spec);
      const std::vector<float> y = round_trip(enc, x, seeded(3));
      const double e2 = std::pow(diff_norm(x, y), 2), x2 = std::pow(norm(x), 2);
      EXPECT_LE(e2, (1.0 - c.delta) * x2 * (1 + 1e-6) + 1e-30) << c.spec << " n=" << x.size();
    }
  }
  Encoder psgd("powersgd:rank=1,fallback=int8");
  const std::vector<float> y = round_trip(psgd, d.x, seeded(3, d.layout));
  EXPECT_LT(diff_norm(d.x, y), norm(d.x));
}

// Mean over T seeds of D(C(x)) against x: per element z = (mean - x) / (sd / sqrt(T)) with
// the exact per-element sd; the z's must look standard normal.
void expect_unbiased(const std::vector<double>& mean, std::span<const float> x, const std::vector<double>& sd,
                     int trials, const char* what) {
  double z_sum = 0, z2 = 0, var_sum = 0;
  size_t m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (sd[i] == 0) {
      EXPECT_NEAR(mean[i], x[i], 1e-6 * std::fabs(x[i]) + 1e-12) << what << " i=" << i;
      continue;
    }
    const double z = (mean[i] - x[i]) / (sd[i] / std::sqrt(double(trials)));
    z_sum += (mean[i] - x[i]);
    var_sum += sd[i] * sd[i] / trials;
    z2 += z * z;
    ++m;
  }
  ASSERT_GT(m, 100u);
  EXPECT_LT(std::fabs(z_sum / std::sqrt(var_sum)), 4.0) << what << ": total bias";
  EXPECT_NEAR(z2 / double(m), 1.0, 0.15) << what << ": per-element spread";
}

TEST_P(CompressMath, RandkIsUnbiased) {
  const std::vector<float> x = gaussian(2000, 11);
  const double p = 0.1;
  Encoder enc("randk:fraction=0.1");
  const int trials = 3000;
  std::vector<double> mean(x.size(), 0.0), sd(x.size());
  for (int t = 0; t < trials; ++t) {
    const std::vector<float> y = round_trip(enc, x, seeded(uint64_t(t) * 7919 + 1));
    for (size_t i = 0; i < x.size(); ++i) mean[i] += y[i] / double(trials);
  }
  for (size_t i = 0; i < x.size(); ++i) sd[i] = std::fabs(x[i]) * std::sqrt((1 - p) / p);
  expect_unbiased(mean, x, sd, trials, "randk");
}

TEST_P(CompressMath, StochasticRoundingIsUnbiased) {
  const std::vector<float> x = gaussian(2048, 12);
  Encoder enc("int4:block=64,stochastic");
  const int trials = 2000;
  std::vector<double> mean(x.size(), 0.0), sd(x.size());
  for (int t = 0; t < trials; ++t) {
    const std::vector<float> y = round_trip(enc, x, seeded(uint64_t(t) + 100));
    for (size_t i = 0; i < x.size(); ++i) mean[i] += y[i] / double(trials);
  }
  for (size_t b = 0; b < x.size(); b += 64) {
    float absmax = 0;
    for (size_t i = b; i < b + 64; ++i) absmax = std::max(absmax, std::fabs(x[i]));
    const double s = absmax / 7.0;
    for (size_t i = b; i < b + 64; ++i) {
      const double v = x[i] / s, f = v - std::floor(v);
      sd[i] = s * std::sqrt(f * (1 - f));
    }
  }
  expect_unbiased(mean, x, sd, trials, "int4 stochastic");
}

// Error feedback: the decoded payloads plus the residual always sum to the inputs, the
// residual stays bounded, and the running sum tracks the inputs far better than the bare
// codec does.
TEST(CompressErrorFeedback, TracksTheSumOfInputs) {
  const size_t n = 4096;
  const std::vector<float> drift = gaussian(n, 21);
  for (const char* spec :
       {"int2:block=64", "sign:block=256", "topk:fraction=0.05", "randk:fraction=0.1,unscaled"}) {
    ErrorFeedback ef(parse_codec_spec(spec), n);
    Encoder bare(spec);
    std::vector<double> sum_in(n, 0), sum_ef(n, 0), sum_bare(n, 0);
    std::vector<uint8_t> q;
    double max_res_early = 0, max_res_late = 0;
    const int rounds = 300;
    for (int t = 0; t < rounds; ++t) {
      std::vector<float> g = gaussian(n, 1000 + t);
      for (size_t i = 0; i < n; ++i) g[i] = drift[i] + 0.5f * g[i];
      ef.encode(g, seeded(uint64_t(t)), q);
      std::vector<float> y(n, 0.0f), yb(n, 0.0f);
      decode_accumulate(q, y);
      decode_accumulate(bare.encode(g, seeded(uint64_t(t))), yb);
      for (size_t i = 0; i < n; ++i) sum_in[i] += g[i], sum_ef[i] += y[i], sum_bare[i] += yb[i];
      const double res = norm(ef.residual());
      (t < rounds / 2 ? max_res_early : max_res_late) =
          std::max(t < rounds / 2 ? max_res_early : max_res_late, res);
    }
    double e_ef = 0, e_bare = 0, s = 0, e_id = 0;
    for (size_t i = 0; i < n; ++i) {
      e_ef += std::pow(sum_in[i] - sum_ef[i], 2);
      e_bare += std::pow(sum_in[i] - sum_bare[i], 2);
      e_id += std::pow(sum_in[i] - sum_ef[i] - ef.residual()[i], 2);
      s += sum_in[i] * sum_in[i];
    }
    const double rel_ef = std::sqrt(e_ef / s), rel_bare = std::sqrt(e_bare / s);
    std::printf("  %-28s tracking error with EF %.4f, without %.4f; max residual %.1f then %.1f (|g| %.1f)\n",
                spec, rel_ef, rel_bare, max_res_early, max_res_late, norm(drift) * 1.118);
    EXPECT_LE(std::sqrt(e_id / s), 1e-4) << spec << ": sum of payloads + residual != sum of inputs";
    EXPECT_LE(rel_ef, 0.1) << spec;
    EXPECT_LT(rel_ef, rel_bare / 4 + 1e-3) << spec;
    EXPECT_LE(max_res_late, 1.5 * max_res_early) << spec << ": residual grows";
  }
}

TEST(CompressErrorFeedback, RejectedInputLeavesTheResidualAlone) {
  ErrorFeedback ef(parse_codec_spec("int8"), 100);
  std::vector<float> g = gaussian(100, 3);
  std::vector<uint8_t> q;
  ef.encode(g, {}, q);
  const std::vector<float> before(ef.residual().begin(), ef.residual().end());
  g[17] = NAN;
  EXPECT_THROW(ef.encode(g, {}, q), std::domain_error);
  EXPECT_EQ(0, std::memcmp(before.data(), ef.residual().data(), 400));
  EXPECT_THROW(ef.encode(std::vector<float>(99), {}, q), std::invalid_argument);
}

// Information-theoretic payload: header and parameters, plus bits x elements and the
// scales for quantisers, 32 bits per value plus log2 C(n, k) for topk's positions, 32 bits
// per value for randk (positions come from the seed).
TEST(CompressWire, SizeWithinOnePercentOfTheInformationContent) {
  const size_t n = 1 << 20;
  const std::vector<float> x = gaussian(n, 31);
  auto log2_binom = [](double nn, double k) {
    return (std::lgamma(nn + 1) - std::lgamma(k + 1) - std::lgamma(nn - k + 1)) / std::log(2.0);
  };
  for (const char* s : {"fp32", "fp16", "bf16", "int8:block=64", "int4:block=64", "int2:block=64",
                        "int2:block=32", "sign:block=256", "sign:block=64", "topk:fraction=0.01",
                        "topk:fraction=0.001,approx", "topk:fraction=0.2", "randk:fraction=0.01"}) {
    const CodecSpec spec = parse_codec_spec(s);
    const std::vector<uint8_t> q = Encoder(spec).encode(x, seeded(5));
    double ideal = 8.0 * kHeaderBytes;
    const int bits = quant_bits(spec.codec);
    if (bits > 0) {
      ideal += 64 + double(n) * bits + 32.0 * std::ceil(double(n) / spec.block);
    } else if (spec.codec == CodecId::kTopk) {
      uint64_t k;
      std::memcpy(&k, q.data() + kHeaderBytes, 8);
      ideal += 128 + 32.0 * double(k) + log2_binom(double(n), double(k));
    } else if (spec.codec == CodecId::kRandk) {
      uint64_t count;
      std::memcpy(&count, q.data() + kHeaderBytes + 16, 8);
      ideal += 192 + 32.0 * double(count);
    } else {
      ideal += double(n) * (spec.codec == CodecId::kFp32 ? 32 : 16);
    }
    const double ratio = 8.0 * double(q.size()) / ideal;
    std::printf("  %-28s %10zu bytes, %.4f x information content\n", s, q.size(), ratio);
    EXPECT_LE(ratio, 1.01) << s;
  }
}

// Bit-for-bit: payloads and decoded values do not depend on the thread count, and a device's
// payloads and decodes equal the CPU's (so CHOCO's public copies agree across peers).
TEST_P(CompressMath, DeterministicAcrossThreadsAndDevices) {
  const DeltaLike d = delta_like(6, 4, 256);  // ~1.3M elements: several parallel chunks
  const std::vector<float> base = gaussian(d.x.size(), 8);
  for (const char* s : {"fp32", "fp16", "bf16", "int8", "int8:stochastic", "int4",
                        "int4:block=128,stochastic", "int2", "sign", "topk:fraction=0.01",
                        "topk:fraction=0.01,approx", "randk:fraction=0.02", "powersgd:rank=2"}) {
    SCOPED_TRACE(s);
    const EncodeOptions opt = seeded(77, d.layout);
    omp_set_num_threads(1);
    Encoder e1(s);
    const std::vector<uint8_t> q1 = e1.encode(d.x, opt);
    std::vector<float> y1 = base;
    decode_accumulate(q1, y1, 0.5f);
    omp_set_num_threads(2);
    Encoder e2(s);
    const std::vector<uint8_t> q2 = encode_on(GetParam(), e2, d.x, opt);
    std::vector<float> y2 = base;
    decode_accumulate_on(GetParam(), q1, y2, 0.5f);
    EXPECT_TRUE(q1 == q2) << "payload differs";
    EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), 4 * y1.size())) << "decoded bits differ";
  }
  omp_set_num_threads(omp_get_num_procs());
}

TEST_P(CompressMath, DecodeOverwritesAndAccumulates) {
  const std::vector<float> x = gaussian(1000, 9);
  for (const char* s : {"fp16", "int4", "sign:block=64", "topk:fraction=0.1", "randk:fraction=0.3"}) {
    Encoder enc(s);
    const std::vector<uint8_t> q = encode_on(GetParam(), enc, x, seeded(1));
    std::vector<float> once(x.size(), 123.0f), twice(x.size(), 0.0f);
    decode(q, once);  // overwrites: the 123s are gone
    decode_accumulate_on(GetParam(), q, twice, 2.0f);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(twice[i], 2.0f * once[i]) << s << " i=" << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, CompressMath, ::testing::Values(DeviceKind::kCpu, DeviceKind::kCuda),
                         device_name);

TEST(CompressEncode, RejectsNonFiniteAndOutOfRangeInput) {
  std::vector<float> x = gaussian(300, 1);
  for (const char* s : {"fp32", "fp16", "bf16", "int8", "int2:stochastic", "sign", "topk", "randk"}) {
    x[200] = INFINITY;
    EXPECT_THROW(Encoder(s).encode(x), std::domain_error) << s;
    x[200] = NAN;
    EXPECT_THROW(Encoder(s).encode(x), std::domain_error) << s;
    x[200] = 0.0f;
  }
  // topk checks finiteness in its selection pass: every path, every parallel chunk, sampled or not.
  std::vector<float> big = gaussian(200'000, 2);
  for (const char* s : {"topk:fraction=0.01", "topk:fraction=0.01,approx", "topk:fraction=0.5"}) {
    for (size_t at : {size_t(0), size_t(70'001), big.size() - 1}) {
      for (float bad : {INFINITY, -INFINITY, NAN}) {
        big[at] = bad;
        EXPECT_THROW(Encoder(s).encode(big), std::domain_error) << s << " at " << at;
      }
      big[at] = 0.5f;
    }
  }
  x[5] = 1e6f;  // beyond fp16
  EXPECT_THROW(Encoder("fp16").encode(x), std::domain_error);
  EXPECT_NO_THROW(Encoder("bf16").encode(x));
  EXPECT_THROW(Encoder("powersgd").encode(x), std::invalid_argument);  // needs a layout
  const MatrixView bad[] = {{0, 10, 10}, {50, 10, 10}};                // overlapping
  EXPECT_THROW(Encoder("powersgd").encode(x, seeded(0, bad)), std::invalid_argument);
}

TEST(CompressEncode, EmptyAndTinySpans) {
  for (const char* s :
       {"fp32", "fp16", "bf16", "int8", "int4", "int2", "sign", "topk", "topk:approx", "randk"}) {
    for (size_t n : {0, 1, 7, 9}) {
      const std::vector<float> x = gaussian(n, n);
      const std::vector<uint8_t> q = Encoder(s).encode(x, seeded(2));
      std::vector<float> y(n);
      EXPECT_NO_THROW(decode(q, y)) << s << " n=" << n;
    }
  }
}

// A plain scalar transcription of the int8/int4/int2/sign body (docs/compression.md): the
// vectorised kernels must produce exactly these scales and code bytes. The last block is
// zero-padded for its codes (the padding bits of the last byte hold the codes of zeros). The
// products go through volatile floats: the kernels never fuse a multiply-add
// (-ffp-contract=off), and this file's compiler must not either.
std::vector<uint8_t> reference_quant(std::span<const float> x, int bits, bool sign, size_t bs,
                                     bool stochastic, uint64_t seed) {
  const bool mid_rise = bits <= 2;
  const int qmax = mid_rise ? (1 << bits) - 1 : (1 << (bits - 1)) - 1, lo = mid_rise ? 0 : -qmax;
  const size_t n = x.size(), nb = (n + bs - 1) / bs, code_bytes = (n * size_t(bits) + 7) / 8;
  const uint32_t key = math::stream_key(seed, math::kStreamRounding);
  std::vector<uint8_t> out(4 * nb + code_bytes, 0);
  for (size_t b = 0; b < nb; ++b) {
    const size_t first = b * bs;
    float absmax = 0;
    for (size_t i = first; i < std::min(n, first + bs); ++i) absmax = std::max(absmax, std::fabs(x[i]));
    const float inv = absmax > 0 ? std::min(float(qmax) / absmax, std::numeric_limits<float>::max()) : 0.0f;
    float lane[math::kSumLanes] = {};
    uint32_t sq = 0;
    for (size_t i = first; i < first + bs && i * bits / 8 < code_bytes; ++i) {
      const float xi = i < n ? x[i] : 0.0f;
      volatile float scaled = (mid_rise ? xi * 0.5f : xi) * inv;
      const float v = scaled + (mid_rise ? 1.5f : 0.0f);
      int c;
      if (sign) {
        c = std::signbit(xi) ? 0 : 1;
      } else if (stochastic) {
        const float vc = std::clamp(v, float(lo), float(qmax)), fl = std::floor(vc);
        c = int(fl) + (math::uniform24(math::element_bits(key, i)) < vc - fl ? 1 : 0);
      } else {
        c = int(std::clamp(std::nearbyint(v), float(lo), float(qmax)));
      }
      out[4 * nb + i * bits / 8] |= uint8_t((uint32_t(c) & ((1U << bits) - 1)) << (i * bits % 8));
      if (i >= n) continue;
      const int level = mid_rise ? 2 * c - qmax : c;
      volatile float product = xi * float(level);
      lane[(i - first) % math::kSumLanes] += product;
      sq += uint32_t(level * level);
    }
    const float scale = mid_rise && !stochastic ? math::fold_lanes(lane) / float(sq) : absmax / float(qmax);
    std::memcpy(out.data() + 4 * b, &scale, 4);
  }
  return out;
}

TEST(CompressQuant, PayloadsMatchAScalarReference) {
  std::vector<float> x = gaussian(70001, 31);           // two parallel chunks and a short last block
  for (size_t i = 640; i < 704; ++i) x[i] = 0.0f;       // an all-zero block
  for (size_t i = 1280; i < 1344; ++i) x[i] *= 1e-40f;  // subnormals
  for (size_t i = 2000; i < 2100; ++i) x[i] = i % 2 ? -0.0f : 0.5f;  // signed zeros
  x[3000] = 1e30f;                                                   // a huge value
  struct Case {
    const char* name;
    int bits;
    bool sign;
  };
  for (const Case c :
       {Case{"int8", 8, false}, Case{"int4", 4, false}, Case{"int2", 2, false}, Case{"sign", 1, true}}) {
    for (size_t bs : {64, 24, 256}) {
      for (bool stochastic : {false, true}) {
        if (stochastic && c.sign) continue;
        const std::string spec =
            std::string(c.name) + ":block=" + std::to_string(bs) + (stochastic ? ",stochastic" : "");
        SCOPED_TRACE(spec);
        const std::vector<uint8_t> q = Encoder(spec).encode(x, seeded(5));
        const std::vector<uint8_t> ref = reference_quant(x, c.bits, c.sign, bs, stochastic, 5);
        ASSERT_EQ(q.size(), 24 + ref.size());
        EXPECT_EQ(0, std::memcmp(q.data() + 24, ref.data(), ref.size()));
      }
    }
  }
}

// element_bits_at, which the CPU kernels use, equals element_bits across the 2^32 boundary.
TEST(CompressQuant, ElementBitsAtCarriesIntoTheHighWord) {
  const uint32_t key = math::stream_key(9, math::kStreamRounding);
  for (uint64_t first : {uint64_t(0), (uint64_t(1) << 32) - 5, (uint64_t(3) << 32) - 1}) {
    for (uint32_t i = 0; i < 10; ++i)
      EXPECT_EQ(math::element_bits_at(key, first, i), math::element_bits(key, first + i));
  }
}

TEST(CompressSpec, ParsesAndPrintsCanonically) {
  const char* ok[] = {"fp32",
                      "fp16",
                      "bf16",
                      "int8:block=64",
                      "int4:block=64,stochastic",
                      "int2:block=8",
                      "sign:block=256",
                      "topk:fraction=0.01",
                      "topk:fraction=0.01,approx",
                      "randk:fraction=0.5",
                      "randk:fraction=0.01,unscaled",
                      "powersgd:rank=4,fallback=fp16",
                      "powersgd:rank=1,fallback=int8"};
  for (const char* s : ok) EXPECT_EQ(to_string(parse_codec_spec(s)), s);
  EXPECT_EQ(to_string(parse_codec_spec("int4")), "int4:block=64");
  EXPECT_EQ(to_string(parse_codec_spec("sign")), "sign:block=256");
  EXPECT_EQ(to_string(parse_codec_spec("topk")), "topk:fraction=0.01");
  EXPECT_EQ(to_string(parse_codec_spec("powersgd")), "powersgd:rank=4,fallback=fp16");
  const char* bad[] = {"",
                       "int3",
                       "fp16:block=64",
                       "int8:block=7",
                       "int8:block=0",
                       "int8:block=70000",
                       "int8:",
                       "int8:block=64,",
                       "int8:stochastic=1",
                       "sign:stochastic",
                       "topk:fraction=0",
                       "topk:fraction=1.5",
                       "topk:fraction=abc",
                       "randk:approx",
                       "powersgd:rank=0",
                       "powersgd:fallback=topk",
                       "topk:fraction=0.1x"};
  for (const char* s : bad) EXPECT_THROW(parse_codec_spec(s), std::invalid_argument) << "'" << s << "'";
  try {
    parse_codec_spec("int8:blok=64");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown option 'blok=64' for int8 (options: block=N, stochastic)"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace murmur::compress::testing

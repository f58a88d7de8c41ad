// murmur bench compress: encode/decode throughput of one codec beside memcpy of the
// same buffer in the same run (the physical limit), plus wire ratio and error.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "compress/codec.h"
#include "compress/codec_math.h"
#include "compress/device.h"
#include "node/cli/commands.h"
#include "node/run/options.h"
#if MURMUR_COMPRESS_CUDA
#include "compress/cuda/codec_cuda.h"
#endif

namespace murmur::cli {
namespace {

struct CompressArgs {
  std::string codec;
  run::DeviceOptions device;
  size_t elements = 10'000'000;
  int repeats = 5;
  bool json = false;
};

// Gaussian input from a counter hash (Box-Muller), generated in parallel.
std::vector<float> bench_input(size_t n) {
  namespace m = compress::math;
  std::vector<float> x(n);
  const uint32_t key = m::stream_key(2024, 0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < int64_t(n); ++i) {
    const float u1 = m::uniform24(m::element_bits(key, 2 * uint64_t(i))) + 0x1p-25f;
    const float u2 = m::uniform24(m::element_bits(key, 2 * uint64_t(i) + 1));
    x[size_t(i)] = std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
  }
  return x;
}

// PowerSGD needs matrices: tile the span with square matrices of side min(1024, sqrt(n)); the
// rest goes to the fallback codec.
std::vector<compress::MatrixView> bench_layout(size_t n) {
  const uint32_t side = uint32_t(std::min<double>(1024, std::floor(std::sqrt(double(n)))));
  std::vector<compress::MatrixView> layout;
  for (uint64_t at = 0; side > 0 && at + uint64_t(side) * side <= n; at += uint64_t(side) * side) {
    layout.push_back({at, side, side});
  }
  return layout;
}

template <class Fn>
double median_ms(int repeats, Fn&& fn) {
  fn();  // warm-up: page faults, caches, lazy initialisation
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// memcpy of the same buffer split over the same threads the codecs use.
void parallel_memcpy(float* dst, const float* src, size_t n) {
  const size_t grain = size_t(1) << 16, chunks = (n + grain - 1) / grain;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < int64_t(chunks); ++c) {
    const size_t b = size_t(c) * grain;
    std::memcpy(dst + b, src + b, 4 * (std::min(n, b + grain) - b));
  }
}

struct Timings {
  double encode_ms, decode_ms, memcpy_ms;
  std::vector<uint8_t> payload;
  std::vector<float> decoded;
};

Timings run_cpu(compress::Encoder& enc, const std::vector<float>& x, const compress::EncodeOptions& opt,
                int reps) {
  Timings t;
  std::vector<float> out(x.size(), 0.0f);
  t.memcpy_ms = median_ms(reps, [&] { parallel_memcpy(out.data(), x.data(), x.size()); });
  t.encode_ms = median_ms(reps, [&] { enc.encode(x, opt, t.payload); });
  std::fill(out.begin(), out.end(), 0.0f);
  t.decode_ms = median_ms(reps, [&] { compress::decode_accumulate(t.payload, out, 1e-3f); });
  t.decoded.resize(x.size());
  compress::decode(t.payload, t.decoded);
  return t;
}

#if MURMUR_COMPRESS_CUDA
Timings run_cuda(compress::Encoder& enc, const std::vector<float>& x, const compress::EncodeOptions& opt,
                 int reps) {
  Timings t;
  compress::cuda::DeviceBuffer dx(x.size()), dout(x.size());
  dx.upload(x);
  t.memcpy_ms = median_ms(reps, [&] { dout.copy_from(dx); });
  t.encode_ms = median_ms(reps, [&] { compress::cuda::encode(enc, dx.data(), x.size(), opt, t.payload); });
  t.decode_ms =
      median_ms(reps, [&] { compress::cuda::decode_accumulate(t.payload, dout.data(), x.size(), 1e-3f); });
  t.decoded.resize(x.size());
  compress::decode(t.payload, t.decoded);  // the error is the codec's, whichever device encoded
  return t;
}
#endif

void run_bench(const CompressArgs& a) {
  if (a.elements == 0) throw std::invalid_argument("--elements must be positive");
  if (a.repeats < 1) throw std::invalid_argument("--repeats must be at least 1");
  if (a.device.threads > 0) omp_set_num_threads(a.device.threads);
  compress::Encoder enc(a.codec);
  const std::vector<float> x = bench_input(a.elements);
  const std::vector<compress::MatrixView> layout = bench_layout(a.elements);
  const compress::EncodeOptions opt{.seed = 1, .layout = layout};

  Timings t;
  if (a.device.kind == "cpu") {
    t = run_cpu(enc, x, opt, a.repeats);
  } else {
    std::string why;
    if (!compress::cuda_available(&why)) throw std::runtime_error("--device cuda: " + why);
#if MURMUR_COMPRESS_CUDA
    t = run_cuda(enc, x, opt, a.repeats);
#endif
  }
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (double(x[i]) - t.decoded[i]) * (double(x[i]) - t.decoded[i]);
    ref += double(x[i]) * x[i];
  }
  const double gb = 4.0 * double(x.size()) / 1e9;
  const nlohmann::json j = {
      {"codec", compress::to_string(enc.spec())},
      {"elements", a.elements},
      {"device", a.device.kind},
      {"threads", a.device.kind == "cpu" ? omp_get_max_threads() : 0},
      {"repeats", a.repeats},
      {"wire_bytes", t.payload.size()},
      {"bits_per_element", 8.0 * double(t.payload.size()) / double(x.size())},
      {"ratio", 4.0 * double(x.size()) / double(t.payload.size())},
      {"rel_error", std::sqrt(err / ref)},
      {"encode_ms", t.encode_ms},
      {"decode_ms", t.decode_ms},
      {"memcpy_ms", t.memcpy_ms},
      {"encode_gbps", gb / (t.encode_ms / 1e3)},
      {"decode_gbps", gb / (t.decode_ms / 1e3)},
      {"memcpy_gbps", gb / (t.memcpy_ms / 1e3)},
  };
  if (a.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "%s, %zu elements on %s: encode %.2f GB/s, decode %.2f GB/s, memcpy %.2f GB/s; ratio %.2f, "
        "relative error %.4g\n",
        j["codec"].get<std::string>().c_str(), a.elements, a.device.kind.c_str(),
        j["encode_gbps"].get<double>(), j["decode_gbps"].get<double>(), j["memcpy_gbps"].get<double>(),
        j["ratio"].get<double>(), j["rel_error"].get<double>());
  }
}

}  // namespace

void add_bench_compress(CLI::App& bench) {
  auto a = std::make_shared<CompressArgs>();
  CLI::App* sub =
      bench.add_subcommand("compress",
                           "Codec throughput: encode and decode GB/s of fp32 input beside memcpy of the same "
                           "buffer in the same run "
                           "(medians after a warm-up), wire ratio and relative error on Gaussian data");
  sub->add_option("--codec", a->codec,
                  "Codec spec, e.g. fp16, int8:block=64, int4:block=64,stochastic, sign:block=256, "
                  "topk:fraction=0.01,approx, randk:fraction=0.01, powersgd:rank=4 (docs/compression.md)")
      ->required();
  sub->add_option("--elements", a->elements, "Number of fp32 elements in the buffer")->capture_default_str();
  sub->add_option("--repeats", a->repeats, "Timed repetitions per operation (the median is reported)")
      ->capture_default_str();
  run::add_device_options(*sub, a->device, "Device");
  sub->add_flag("--json", a->json, "Print one JSON object instead of a sentence");
  sub->callback([a] { run_bench(*a); });
}

}  // namespace murmur::cli

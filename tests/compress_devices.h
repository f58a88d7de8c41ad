// Test-side view of the codec devices: every codec test runs on each device, and the
// CUDA instance skips itself (with the reason) where no GPU is visible.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compress/codec.h"
#include "compress/device.h"
#if MURMUR_COMPRESS_CUDA
#include "compress/cuda/codec_cuda.h"
#endif

namespace murmur::compress::testing {

enum class DeviceKind { kCpu, kCuda };

inline std::string device_name(const ::testing::TestParamInfo<DeviceKind>& info) {
  return info.param == DeviceKind::kCpu ? "cpu" : "cuda";
}

// Encode/decode on host vectors, through the chosen device.
inline std::vector<uint8_t> encode_on(DeviceKind d, Encoder& enc, std::span<const float> x,
                                      const EncodeOptions& opt = {}) {
  std::vector<uint8_t> payload;
#if MURMUR_COMPRESS_CUDA
  if (d == DeviceKind::kCuda) {
    cuda::DeviceBuffer buf(x.size());
    buf.upload(x);
    cuda::encode(enc, buf.data(), x.size(), opt, payload);
    return payload;
  }
#endif
  (void)d;
  enc.encode(x, opt, payload);
  return payload;
}

inline void decode_accumulate_on(DeviceKind d, std::span<const uint8_t> payload, std::span<float> out,
                                 float alpha) {
#if MURMUR_COMPRESS_CUDA
  if (d == DeviceKind::kCuda) {
    cuda::DeviceBuffer buf(out.size());
    buf.upload(out);
    cuda::decode_accumulate(payload, buf.data(), out.size(), alpha);
    buf.download(out);
    return;
  }
#endif
  (void)d;
  decode_accumulate(payload, out, alpha);
}

// Skips the current test when the device is not usable here.
#define MURMUR_REQUIRE_DEVICE(kind)                                              \
  do {                                                                           \
    std::string why_;                                                            \
    if ((kind) == ::murmur::compress::testing::DeviceKind::kCuda &&              \
        !::murmur::compress::cuda_available(&why_)) {                            \
      GTEST_SKIP() << "no CUDA device visible: " << why_;                        \
    }                                                                            \
  } while (0)

}  // namespace murmur::compress::testing

// CUDA codecs: the same payloads as the CPU codecs, bit for bit where the codec is
// deterministic (all but PowerSGD's encoder, which runs on the host here). Inputs and
// outputs are device pointers; payloads are host bytes (they go to the network).
// Threading: calls are synchronous on the default stream of the current device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "compress/codec.h"

namespace murmur::compress::cuda {

// True if a CUDA device is usable; otherwise false with the reason in *why.
bool device_visible(std::string* why);

// A float array in device memory (RAII), for callers that hold no CUDA headers.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  float* data() { return ptr_; }
  const float* data() const { return ptr_; }
  size_t size() const { return n_; }
  void upload(std::span<const float> host);
  void download(std::span<float> host) const;
  void copy_from(const DeviceBuffer& other);  // device-to-device, same size

 private:
  float* ptr_ = nullptr;
  size_t n_ = 0;
};

// Encodes d_x[0, n) like Encoder::encode (PowerSGD through the host encoder and its state).
void encode(Encoder& encoder, const float* d_x, size_t n, const EncodeOptions& opt, std::vector<uint8_t>& payload);
// d_out[0, n) += alpha * D(payload), with the CPU decoder's checks (DecodeError; d_out
// unchanged on error).
void decode_accumulate(std::span<const uint8_t> payload, float* d_out, size_t n, float alpha);

}  // namespace murmur::compress::cuda

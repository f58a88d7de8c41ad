// Error checking and device memory for the CUDA model engine. Every CUDA and
// cuBLASLt status becomes a std::runtime_error naming the call: a peer whose GPU
// fails reports it and may continue (or exit cleanly), it never aborts.
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

namespace murmur::cuda {

using bf16 = __nv_bfloat16;

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA ") + what + " failed: " + cudaGetErrorName(e) + " (" +
                             cudaGetErrorString(e) + ")");
}

inline void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLASLt ") + what + " failed: " + cublasLtGetStatusName(s) + " (" +
                             cublasLtGetStatusString(s) + ")");
}

// A kernel launch is checked right after it (bad configurations surface here;
// faults during execution surface at the next synchronising call).
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// n elements of T in device memory (RAII, movable).
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) : n_(n) {
    if (n == 0) return;
    const cudaError_t e = cudaMalloc(&p_, n * sizeof(T));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();  // out-of-memory is not sticky: clear it
      throw std::runtime_error("CUDA cudaMalloc of " + std::to_string(n * sizeof(T) >> 20) +
                               " MiB failed: " + cudaGetErrorString(e));
    }
  }
  ~DeviceArray() {
    if (p_) cudaFree(p_);
  }
  DeviceArray(DeviceArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return p_; }
  size_t size() const { return n_; }
  // Synchronous copies of n elements starting at element `at`, bounds-checked.
  void upload(const T* host, size_t n, size_t at = 0) {
    bounds(n, at);
    check(cudaMemcpy(p_ + at, host, n * sizeof(T), cudaMemcpyHostToDevice), "upload (cudaMemcpy)");
  }
  void download(T* host, size_t n, size_t at = 0) const {
    bounds(n, at);
    check(cudaMemcpy(host, p_ + at, n * sizeof(T), cudaMemcpyDeviceToHost), "download (cudaMemcpy)");
  }

 private:
  void bounds(size_t n, size_t at) const {
    if (at > n_ || n > n_ - at)
      throw std::out_of_range("device copy of " + std::to_string(n) + " elements at " + std::to_string(at) +
                              " exceeds the array of " + std::to_string(n_));
  }
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace murmur::cuda

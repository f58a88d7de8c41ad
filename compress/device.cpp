#include "compress/device.h"

#if MURMUR_COMPRESS_CUDA
#include "compress/cuda/codec_cuda.h"
#endif

namespace murmur::compress {

bool cuda_available(std::string* why) {
#if MURMUR_COMPRESS_CUDA
  return cuda::device_visible(why);
#else
  if (why) *why = "this build has no CUDA codecs (configured with MURMUR_CUDA=OFF or without nvcc)";
  return false;
#endif
}

}  // namespace murmur::compress

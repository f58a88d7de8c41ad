// Which compute devices the codecs can run on in this build and process.
#pragma once

#include <string>

namespace murmur::compress {

// True when this build has the CUDA codecs and a CUDA device is visible; otherwise
// false with the reason in *why (built without CUDA, no driver, no device...).
bool cuda_available(std::string* why);

}  // namespace murmur::compress

// A LibTorch without CUDA has no device allocator statistics to read.
#include "bench/device_memory.h"

namespace curvd::bench {

std::optional<int64_t> ResetPeakDeviceMemory(const std::string&) {
  return std::nullopt;
}

std::optional<int64_t> PeakDeviceMemory(const std::string&) {
  return std::nullopt;
}

}  // namespace curvd::bench

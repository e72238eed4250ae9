#include <c10/core/Device.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include "bench/device_memory.h"

namespace curvd::bench {
namespace {

namespace allocator = ::c10::cuda::CUDACachingAllocator;

// The index of a "cuda" or "cuda:N" device; nullopt for any other.
std::optional<c10::DeviceIndex> CudaIndex(const std::string& device) {
  const c10::Device parsed(device);
  if (!parsed.is_cuda()) return std::nullopt;
  return parsed.has_index() ? parsed.index() : c10::DeviceIndex{0};
}

// The allocated-bytes statistic of all pools together: entry AGGREGATE (0) of
// StatType, which PyTorch 2.x declares in c10::CachingDeviceAllocator and 1.x
// in CUDACachingAllocator, hence the deduced types.
template <typename DeviceStats>
auto Allocated(const DeviceStats& stats) {
  return stats.allocated_bytes[0];
}

}  // namespace

std::optional<int64_t> ResetPeakDeviceMemory(const std::string& device) {
  const std::optional<c10::DeviceIndex> index = CudaIndex(device);
  if (!index) return std::nullopt;
  allocator::resetPeakStats(*index);
  return Allocated(allocator::getDeviceStats(*index)).current;
}

std::optional<int64_t> PeakDeviceMemory(const std::string& device) {
  const std::optional<c10::DeviceIndex> index = CudaIndex(device);
  if (!index) return std::nullopt;
  return Allocated(allocator::getDeviceStats(*index)).peak;
}

}  // namespace curvd::bench

// The device memory columns of the benchmark: what a device's caching
// allocator holds, read around a timed region. CUDA devices of a LibTorch
// built with CUDA (device_memory_cuda.cc); the CPU, and any device of a
// LibTorch without CUDA, have none to read (device_memory_cpu_only.cc).
#ifndef CURVD_BENCH_DEVICE_MEMORY_H_
#define CURVD_BENCH_DEVICE_MEMORY_H_

#include <cstdint>
#include <optional>
#include <string>

namespace curvd::bench {

// Resets the peak of `device`'s ("cuda:N") allocator statistics to what is
// allocated now, and returns those bytes (the model, the shard, caches);
// nullopt where there is no CUDA allocator. Call after a device
// synchronisation. Not thread-safe with other allocations on the device.
std::optional<int64_t> ResetPeakDeviceMemory(const std::string& device);

// The most bytes allocated at once on `device` since the last
// ResetPeakDeviceMemory (the allocator's own peak, torch's
// max_memory_allocated); nullopt as above.
std::optional<int64_t> PeakDeviceMemory(const std::string& device);

}  // namespace curvd::bench

#endif  // CURVD_BENCH_DEVICE_MEMORY_H_

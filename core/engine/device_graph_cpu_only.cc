// DeviceGraph in a LibTorch without CUDA (core/CMakeLists.txt picks this file
// or device_graph_cuda.cc): there is no device to record on, and work runs in
// turn.
#include "core/engine/device_graph.h"

namespace curvd::core {

bool DeviceGraphsAvailable(const torch::Device&) { return false; }

absl::StatusOr<std::unique_ptr<DeviceGraph>> RecordDeviceGraph(
    const torch::Device& device, int, const std::function<void()>&) {
  return absl::UnimplementedError(
      "device graphs need a CUDA device and a LibTorch built with CUDA; " +
      device.str() + " has none in this build");
}

void RunSideBySide(const torch::Device&, int count,
                   const std::function<void(int)>& body) {
  for (int i = 0; i < count; ++i) body(i);
}

}  // namespace curvd::core

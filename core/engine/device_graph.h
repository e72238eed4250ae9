// Device work recorded once and replayed with one launch: a CUDA graph, for
// loops whose speed the host's kernel launches bound, not the device
// (docs/adr/0012-device-graphs.md). Internal to core (includes torch).
#ifndef CURVD_CORE_ENGINE_DEVICE_GRAPH_H_
#define CURVD_CORE_ENGINE_DEVICE_GRAPH_H_

#include <torch/types.h>

#include <functional>
#include <memory>

#include "absl/status/statusor.h"

namespace curvd::core {

class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;

  // Runs the recorded work again on the device's current stream: the same
  // kernels on the same memory, so it reads what its input buffers hold now
  // and rewrites its outputs in place. Asynchronous, as a kernel launch is.
  virtual void Replay() = 0;
};

// Whether RecordDeviceGraph can record on `device`: a CUDA device, in a
// LibTorch built with CUDA.
bool DeviceGraphsAvailable(const torch::Device& device);

// Records `work` on `device`. `work` must launch the same kernels on the same
// buffers every time it runs: no host synchronisation (no .item(), no
// copies to the host), no shapes that depend on values. It runs `warmup` >= 1
// times eagerly first, on a side stream ordered after the current one, so
// that lazy set-up (library handles, TorchScript's profiling runs, the
// allocator's growth) stays out of the graph; then once more while
// recording, which computes nothing: call Replay() for results. Tensors that
// `work` allocates while recording live in the graph's own memory for the
// graph's lifetime, and those it keeps (its outputs) are rewritten by every
// Replay(). An exception in a warmup run propagates unchanged. A failure
// while recording (work that synchronises, for one) is FailedPrecondition
// with torch's message, and leaves the device usable. Unimplemented where
// !DeviceGraphsAvailable(device). Threads may call it at the same time: their
// warmups run side by side (each on a side stream of its own), their
// recordings one at a time (emptying the allocator's cache, which a
// recording may need, must not happen during another thread's capture). A graph
// must not be destroyed while another stream uses its outputs; replays it
// queued are waited for.
absl::StatusOr<std::unique_ptr<DeviceGraph>> RecordDeviceGraph(
    const torch::Device& device, int warmup, const std::function<void()>& work);

// Whether RunSideBySide(device, count, ...) runs its bodies side by side
// (count > 1 on a device with graphs) rather than in turn: what a caller
// checks before making per-body copies that only side by side needs.
inline bool RunsSideBySide(const torch::Device& device, int count) {
  return count > 1 && DeviceGraphsAvailable(device);
}

// Runs body(i) for each i in [0, count) on `device`, side by side where CUDA
// can (RunsSideBySide): each on a stream of its own (this thread's, the same
// for the same i in every call) that starts after the work queued so far on the
// current stream, which then waits for them all. Within a recording they become
// parallel branches of the graph. Elsewhere, and for count 1, in turn on the
// current stream. Bodies must write disjoint memory. An exception propagates
// once the current stream waits for every branch started.
void RunSideBySide(const torch::Device& device, int count,
                   const std::function<void(int)>& body);

}  // namespace curvd::core

#endif  // CURVD_CORE_ENGINE_DEVICE_GRAPH_H_

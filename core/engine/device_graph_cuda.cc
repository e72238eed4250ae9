// DeviceGraph as a CUDA graph (core/CMakeLists.txt builds this file where
// LibTorch has CUDA, else device_graph_cpu_only.cc).
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/engine/device_graph.h"

namespace curvd::core {
namespace {

class CudaGraph final : public DeviceGraph {
 public:
  explicit CudaGraph(std::unique_ptr<at::cuda::CUDAGraph> graph)
      : graph_(std::move(graph)) {}
  // The graph's memory goes back to the allocator with it: not before the
  // replays queued on the device have finished with it.
  ~CudaGraph() override { replayed_.synchronize(); }
  void Replay() override {
    graph_->replay();
    replayed_.record();
  }

 private:
  std::unique_ptr<at::cuda::CUDAGraph> graph_;
  at::cuda::CUDAEvent replayed_;  // after the last replay
};

// This thread's side stream `slot` on the current device, the same in every
// call: autograd keeps the stream a parameter's gradient accumulator was made
// on, and one made by an earlier recording must find the same stream in the
// next (a mismatch synchronises streams, which breaks a recording). Slot 0
// records; slots 1.. are RunSideBySide's branches.
c10::cuda::CUDAStream SideStream(int slot) {
  thread_local std::vector<std::vector<std::optional<c10::cuda::CUDAStream>>>
      streams;  // [device][slot]
  const auto device = static_cast<size_t>(c10::cuda::current_device());
  if (streams.size() <= device) streams.resize(device + 1);
  std::vector<std::optional<c10::cuda::CUDAStream>>& slots = streams[device];
  if (slots.size() <= static_cast<size_t>(slot)) slots.resize(slot + 1);
  if (!slots[slot]) slots[slot] = c10::cuda::getStreamFromPool();
  return *slots[slot];
}

// Makes `origin` wait for the work queued so far on `branch`. Never throws,
// since it runs while a body's exception unwinds: inside a recording that the
// body broke (it synchronised), CUDA refuses both calls, and the recording's
// end reports the failure.
void Join(const c10::cuda::CUDAStream& branch,
          const c10::cuda::CUDAStream& origin) noexcept {
  cudaEvent_t done = nullptr;
  if (cudaEventCreateWithFlags(&done, cudaEventDisableTiming) == cudaSuccess) {
    if (cudaEventRecord(done, branch.stream()) == cudaSuccess) {
      (void)cudaStreamWaitEvent(origin.stream(), done, 0);
    }
    // The wait already holds the dependency: the event may go.
    (void)cudaEventDestroy(done);
  }
  (void)cudaGetLastError();
}

// While a capture is under way PyTorch's caching allocator cannot give its
// cached, unused blocks back to the driver (that would synchronise the
// capturing stream), so a recording whose private pool needs fresh device
// memory fails with out-of-memory when the driver's free memory sits in that
// cache (after a large measurement, say). Before capturing on the current
// device: when the driver reports less than an eighth of the device free,
// the cache is emptied (which waits for the device).
//
// Emptying the cache during another thread's capture is not allowed (the
// allocator's capture bookkeeping is per process), so the release and the
// capture of every recording in the process hold recording_mutex.
ABSL_CONST_INIT absl::Mutex recording_mutex(absl::kConstInit);

void ReleaseCachedMemoryIfTight() {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return;
  }
  if (free_bytes < total_bytes / 8) {
    c10::cuda::CUDACachingAllocator::emptyCache();
  }
}

// After a failed recording: where capture_end threw before telling the
// caching allocator that the capture is over, tells it and releases the
// recording's pool. Left undone, the allocator would consider a capture under
// way for the rest of the process, and while one is, it never gives cached
// memory back to the driver to satisfy an allocation: every later large
// allocation on the device would fail. Where capture_end did tell it
// (endAllocateToPool throws: not recording to that pool), the graph object
// releases its pool itself.
void LeaveAllocationToPool(c10::DeviceIndex device,
                           const at::cuda::MempoolId_t& pool) {
  try {
    c10::cuda::CUDACachingAllocator::endAllocateToPool(device, pool);
  } catch (const c10::Error&) {
    return;
  }
  try {
    c10::cuda::CUDACachingAllocator::releasePool(device, pool);
  } catch (const c10::Error&) {
  }
}

// The first line of an exception's message (torch appends a backtrace).
std::string FirstLine(const std::exception& e) {
  const std::string what = e.what();
  return what.substr(0, what.find('\n'));
}

}  // namespace

bool DeviceGraphsAvailable(const torch::Device& device) {
  return device.is_cuda() && torch::cuda::is_available();
}

absl::StatusOr<std::unique_ptr<DeviceGraph>> RecordDeviceGraph(
    const torch::Device& device, int warmup,
    const std::function<void()>& work) {
  if (!DeviceGraphsAvailable(device)) {
    return absl::UnimplementedError(
        absl::StrCat("device graphs need a CUDA device, got ", device.str()));
  }
  const c10::cuda::CUDAGuard device_guard(device);
  const c10::cuda::CUDAStream origin = c10::cuda::getCurrentCUDAStream();
  const c10::cuda::CUDAStream side = SideStream(0);
  // The side stream starts after the work queued so far and the current
  // stream goes on after the side stream's: the recording's buffers were
  // written on the current stream and its replays run there.
  at::cuda::CUDAEvent ready;
  ready.record(origin);
  ready.block(side);
  // Also when a warmup run throws, after the work it queued (a model's
  // parameters being restored, for one).
  const absl::Cleanup rejoin = [&] {
    at::cuda::CUDAEvent done;
    done.record(side);
    done.block(origin);
  };
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  std::string failure;
  {
    const c10::cuda::CUDAStreamGuard stream_guard(side);
    for (int i = 0; i < warmup; ++i) work();
    const absl::MutexLock recording(&recording_mutex);
    ReleaseCachedMemoryIfTight();
    // Thread-local capture: the server's other threads may use the device
    // meanwhile (their own synchronisations must not break this recording).
    // A pool of its own, so that a failed recording can be cleaned up.
    const at::cuda::MempoolId_t pool = at::cuda::graph_pool_handle();
    graph->capture_begin(pool, cudaStreamCaptureModeThreadLocal);
    try {
      work();
    } catch (const std::exception& e) {
      failure = FirstLine(e);
    }
    // Ends the capture also after a failure (the partial graph is dropped
    // with `graph`), so that the stream leaves capture mode.
    try {
      graph->capture_end();
    } catch (const std::exception& e) {
      if (failure.empty()) failure = FirstLine(e);
    }
    if (!failure.empty()) {
      LeaveAllocationToPool(c10::cuda::current_device(), pool);
      (void)cudaGetLastError();
    }
  }
  if (!failure.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("recording a device graph failed: ", failure));
  }
  return std::make_unique<CudaGraph>(std::move(graph));
}

void RunSideBySide(const torch::Device& device, int count,
                   const std::function<void(int)>& body) {
  if (!RunsSideBySide(device, count)) {
    for (int i = 0; i < count; ++i) body(i);
    return;
  }
  const c10::cuda::CUDAGuard device_guard(device);
  const c10::cuda::CUDAStream origin = c10::cuda::getCurrentCUDAStream();
  at::cuda::CUDAEvent forked;
  forked.record(origin);
  for (int i = 0; i < count; ++i) {
    const c10::cuda::CUDAStream branch = SideStream(1 + i);
    forked.block(branch);
    // The current stream waits for the branch, also when body throws.
    const absl::Cleanup join = [&] { Join(branch, origin); };
    const c10::cuda::CUDAStreamGuard stream_guard(branch);
    body(i);
  }
}

}  // namespace curvd::core

// The measurement engine: loads a model at a checkpoint and a shard onto one
// device and runs a measurement. The only public entry point of core that
// touches torch, and this header does not include it.
#ifndef CURVD_CORE_API_ENGINE_H_
#define CURVD_CORE_API_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/measurement.h"
#include "core/api/sources.h"

namespace curvd::core {

// Callbacks a long measurement uses to report and to stop early. Both may be
// empty.
struct Progress {
  // fraction in [0, 1]; called from the measuring thread between iterations.
  std::function<void(double fraction, const std::string& message)> report;
  // Polled between iterations (Lanczos steps, probes); true stops the
  // measurement with absl::CancelledError.
  std::function<bool()> cancelled;
};

// How Engine::PlanSplit decides between helpers and one device.
enum class SplitRule {
  // Helpers only when the shard's samples times the model's parameters reach
  // kMinSplitWork, and not for a train-mode request with micro_batch_size 0
  // (a split would change its micro-batches, and so the sampled loss).
  kIfLargeEnough,
  kAlways,  // helpers whatever the size
};
// Below this, samples x parameters, a product is too short for devices to
// gain from sharing it (the rule of DeviceSplit's automatic mode).
inline constexpr int64_t kMinSplitWork = int64_t{1} << 30;

// Engine::PlanSplit's answer: how many helpers a split would use (0: none),
// and why none, for the result's diagnostics ("not split: ..."; empty when
// some are used).
struct SplitPlan {
  int helpers = 0;
  std::string note;
};

struct EngineOptions {
  // Bytes of models and shards kept on the device between measurements (least
  // recently used out first; those of a running measurement stay). 0 picks the
  // default: 40% of the device's memory on CUDA (8 GiB when the CUDA runtime
  // cannot be asked), 4 GiB on the CPU.
  int64_t cache_budget_bytes = 0;
  // Host bytes one measurement may take: its model's parameters, its shard
  // (the slice) and its working set (a few parameter-sized vectors per
  // method), each sized from the declared shapes and file headers before it
  // is allocated (core/data/memory_budget.h). 0 picks the default: half of
  // the host's physical memory.
  int64_t measurement_host_bytes = 0;
};

// Memory of a device now, for the server's gauges.
struct DeviceMemory {
  int64_t used_bytes = 0;
  int64_t total_bytes = 0;
};

class Engine {
 public:
  // Number of CUDA devices visible to this process (0 without CUDA).
  static int CudaDeviceCount();

  // The memory of `device` in use and in all: for "cuda:N" the CUDA runtime's
  // total minus free (every process's allocations and the caching allocators'
  // reserves, as nvidia-smi shows them) and total; for "cpu" this process's
  // resident set and the host's physical memory. InvalidArgument for a device
  // this process cannot use, Unavailable when it cannot be read. Thread-safe;
  // cheap enough to call at every scrape.
  static absl::StatusOr<DeviceMemory> ReadDeviceMemory(
      const std::string& device);

  // An engine bound to `device` ("cpu", "cuda:0", ...) with default options.
  // InvalidArgument for an unknown or unavailable device.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(
      const std::string& device);
  // The same with `options`; InvalidArgument also for a negative budget or
  // negative measurement_host_bytes. (Not
  // an overload of Create, whose address the server takes.)
  static absl::StatusOr<std::unique_ptr<Engine>> CreateWithOptions(
      const std::string& device, const EngineOptions& options);

  // The number of parameters of `source`'s architecture that `block` selects
  // (every parameter for an empty block), so that a request too large for the
  // server's caps is refused before it queues. Loads the architecture alone
  // on the CPU (the archive's own weights, in float64 so that no value is
  // refused for rounding; source.state_dict_path is not read): one archive
  // load per call, also for a zoo source. Errors as LoadModel's for the
  // architecture (InvalidArgument for a corrupt archive, NotFound for a
  // missing file); never throws. Thread-safe.
  static absl::StatusOr<int64_t> CountParameters(const ModelSource& source,
                                                 const ParameterBlock& block);

  virtual ~Engine() = default;

  // Runs one measurement: the methods of request.methods on one
  // objective (measurement_plan.h says what they share), on the Hessian or
  // the GGN (request.op) of the parameters of request.block. The model and
  // shard stay on the device for later measurements (see EngineOptions). The
  // curvature products of a run share each micro-batch's graph (its forward
  // pass and first derivatives), kept for the whole run when the shard is one
  // micro-batch or the device is CUDA (where running out of memory is
  // recoverable: the measurement is retried without them, then with halved
  // micro-batches); Hutchinson applies its probes in blocks. Float32 and
  // float64 measurements never use TF32; a kTf32 one allows it on CUDA for its
  // own duration, while measurements of other engines of the process wait (the
  // switch is process-wide). Thread-compatible: one thread per engine. Errors:
  // InvalidArgument for inputs that cannot be measured (corrupt archive,
  // weights that do not match the model, NaN/Inf weights, a shard that does not
  // fit the model, a request out of range, a block that selects no parameter,
  // an exact Hessian over its cap), NotFound for missing files, Cancelled when
  // progress.cancelled() said so, ResourceExhausted when the device ran out of
  // memory even at the smallest micro-batch, or before anything of the
  // model, shard or working set is allocated when they exceed
  // EngineOptions::measurement_host_bytes or, on CUDA, the device's memory
  // (the message names what exceeded it and by how much). Never throws.
  virtual absl::StatusOr<MeasurementResult> Measure(
      const ModelSource& model, const ShardSpec& shard,
      const MeasurementRequest& request, const Progress& progress) = 0;

  // How many of `available` helper engines MeasureSplit would put to use for
  // this measurement by `rule`: at most one fewer than the micro-batches (a
  // request with micro_batch_size 0 has one per device), and none by
  // kIfLargeEnough's limits; for a request of the llc kind alone
  // (ChainSplitMethod), at most one fewer than its chains, and by
  // kIfLargeEnough none below kMinSplitWork chains x batch x parameters nor
  // in train mode. Loads the model and the shard into this
  // engine's cache, as Measure would, so that the measurement finds them
  // there. Errors as Measure's (a request with a kind that does not split,
  // FirstUnsplitMethod, gets 0 helpers, not an error). Never throws.
  virtual absl::StatusOr<SplitPlan> PlanSplit(const ModelSource& model,
                                              const ShardSpec& shard,
                                              const MeasurementRequest& request,
                                              SplitRule rule,
                                              int available) = 0;

  // Measure, with the micro-batches divided between this engine's device and
  // those of `helpers` (Objective::CreateSplit;
  // docs/adr/0028-one-measurement-split-across-devices.md): the same result
  // to rounding, on this engine's device, with result.split saying how it
  // was divided. A request with
  // micro_batch_size 0 gets micro-batches of ceil(N / devices) samples, one per
  // device (the result records it; in train mode, where BatchNorm statistics
  // and dropout masks are per micro-batch, that is another sampled loss than
  // the unsplit whole-shard batch). Each helper keeps the model in its own
  // cache, charged to its own budgets, and gets its slice of the shard for the
  // measurement. `helpers` are engines of this process made by Create or
  // CreateWithOptions, on any devices (this one's too), that no other thread
  // uses until this returns. A request of the llc kind alone divides its
  // chains instead (MeasureLlc over one objective per device, in
  // ChainGroupSizes' groups): each helper loads the whole shard,
  // micro_batch_size 0 stays the whole shard, helpers beyond chains - 1 are
  // left out, and the chains equal Measure's to rounding where every device
  // is of this engine's kind and no forward draws randomness (dropout in
  // train mode draws it from each device's generator). InvalidArgument
  // for a helper of another kind and for a request FirstUnsplitMethod names
  // (GOP, LLC calibration, llc beside other kinds), which read per-sample
  // data and are not split; otherwise errors as Measure's. Never throws.
  virtual absl::StatusOr<MeasurementResult> MeasureSplit(
      const std::vector<Engine*>& helpers, const ModelSource& model,
      const ShardSpec& shard, const MeasurementRequest& request,
      const Progress& progress) = 0;

  // The device this engine runs on, e.g. "cuda:0".
  virtual std::string device() const = 0;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_API_ENGINE_H_

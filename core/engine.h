// The measurement engine: loads a model at a checkpoint and a shard onto one device
// and runs a measurement. The only public entry point of core that touches torch,
// and this header does not include it.
#ifndef CURVD_CORE_ENGINE_H_
#define CURVD_CORE_ENGINE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/measurement.h"
#include "core/sources.h"

namespace curvd::core {

// Callbacks a long measurement uses to report and to stop early. Both may be empty.
struct Progress {
  // fraction in [0, 1]; called from the measuring thread between iterations.
  std::function<void(double fraction, const std::string& message)> report;
  // Polled between iterations (Lanczos steps, probes); true stops the measurement
  // with absl::CancelledError.
  std::function<bool()> cancelled;
};

class Engine {
 public:
  // Number of CUDA devices visible to this process (0 without CUDA).
  static int CudaDeviceCount();

  // An engine bound to `device` ("cpu", "cuda:0", ...). InvalidArgument for an
  // unknown or unavailable device.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const std::string& device);

  virtual ~Engine() = default;

  // Runs one measurement. Thread-compatible: one thread per engine. Errors:
  // InvalidArgument for inputs that cannot be measured (corrupt archive, weights
  // that do not match the model, NaN/Inf weights, a shard that does not fit the
  // model, a request out of range), NotFound for missing files, Cancelled when
  // progress.cancelled() said so, ResourceExhausted when the device ran out of
  // memory even at the smallest micro-batch. Never throws.
  virtual absl::StatusOr<MeasurementResult> Measure(
      const ModelSource& model, const ShardSpec& shard,
      const MeasurementRequest& request, const Progress& progress) = 0;

  // The device this engine runs on, e.g. "cuda:0".
  virtual std::string device() const = 0;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_ENGINE_H_

// The engine's answer to running out of device memory: the same measurement
// again without the autograd graphs it kept for the whole run, then with half
// the micro-batch, whose graph is half the size. No torch.
#ifndef CURVD_CORE_ENGINE_OOM_RETRY_H_
#define CURVD_CORE_ENGINE_OOM_RETRY_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "core/api/measurement.h"

namespace curvd::core {

// Calls attempt(micro_batch_size) and, while it fails with an out-of-memory
// status (IsOutOfMemory), calls it again with half the micro-batch (rounded
// down, at least 1). Returns the first result that is not out of memory;
// DeviceOutOfMemoryError (core/api/out_of_memory.h) naming `device` if the
// attempt at micro-batch 1 also ran out. `micro_batch_size` >= 1.
// Thread-compatible.
absl::StatusOr<MeasurementResult> RetryWithSmallerMicroBatches(
    int64_t micro_batch_size,
    const std::function<absl::StatusOr<MeasurementResult>(int64_t)>& attempt,
    const std::string& device);

// Calls attempt(micro_batch_size, retain_graphs) and, if that runs out of
// memory with retain_graphs true, attempt(micro_batch_size, false); then
// retries as RetryWithSmallerMicroBatches does, never retaining graphs again
// (those of the whole shard take the same memory at any micro-batch size).
// Thread-compatible.
absl::StatusOr<MeasurementResult> RetryOnOutOfMemory(
    int64_t micro_batch_size, bool retain_graphs,
    const std::function<absl::StatusOr<MeasurementResult>(
        int64_t micro_batch_size, bool retain_graphs)>& attempt,
    const std::string& device);

}  // namespace curvd::core

#endif  // CURVD_CORE_ENGINE_OOM_RETRY_H_

#include "core/engine/oom_retry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/api/out_of_memory.h"
#include "core/engine/torch_status.h"

namespace curvd::core {

absl::StatusOr<MeasurementResult> RetryWithSmallerMicroBatches(
    int64_t micro_batch_size,
    const std::function<absl::StatusOr<MeasurementResult>(int64_t)>& attempt,
    const std::string& device) {
  int64_t batch = std::max<int64_t>(1, micro_batch_size);
  while (true) {
    absl::StatusOr<MeasurementResult> result = attempt(batch);
    if (result.ok() || !IsOutOfMemory(result.status())) return result;
    if (batch == 1) {
      return DeviceOutOfMemoryError(absl::StrCat(
          device, " ran out of memory even with micro_batch_size 1: ",
          result.status().message()));
    }
    batch = std::max<int64_t>(1, batch / 2);
  }
}

absl::StatusOr<MeasurementResult> RetryOnOutOfMemory(
    int64_t micro_batch_size, bool retain_graphs,
    const std::function<absl::StatusOr<MeasurementResult>(int64_t, bool)>&
        attempt,
    const std::string& device) {
  if (retain_graphs) {
    absl::StatusOr<MeasurementResult> result = attempt(micro_batch_size, true);
    if (result.ok() || !IsOutOfMemory(result.status())) return result;
  }
  return RetryWithSmallerMicroBatches(
      micro_batch_size,
      [&attempt](int64_t batch) { return attempt(batch, false); }, device);
}

}  // namespace curvd::core

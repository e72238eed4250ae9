#include "core/api/out_of_memory.h"

#include "absl/strings/cord.h"

namespace curvd::core {
namespace {

// absl::Status payloads are keyed by a type URL; nothing resolves it.
constexpr absl::string_view kDeviceOutOfMemory =
    "type.curvd.dev/curvd.DeviceOutOfMemory";

}  // namespace

absl::Status DeviceOutOfMemoryError(absl::string_view message) {
  absl::Status status = absl::ResourceExhaustedError(message);
  status.SetPayload(kDeviceOutOfMemory, absl::Cord());
  return status;
}

bool IsDeviceOutOfMemory(const absl::Status& status) {
  return status.code() == absl::StatusCode::kResourceExhausted &&
         status.GetPayload(kDeviceOutOfMemory).has_value();
}

}  // namespace curvd::core

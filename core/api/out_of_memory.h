// The status of a measurement that ran out of device memory even at the
// smallest micro-batch, told apart from other ResourceExhausted statuses (the
// memory budget's refusals, made before anything is allocated) by a payload
// rather than by its message, so that the server's out-of-memory count does
// not depend on the wording.
#ifndef CURVD_CORE_API_OUT_OF_MEMORY_H_
#define CURVD_CORE_API_OUT_OF_MEMORY_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace curvd::core {

// ResourceExhausted with `message`, marked as the device's running out of
// memory. Pure.
absl::Status DeviceOutOfMemoryError(absl::string_view message);

// Whether `status` was made by DeviceOutOfMemoryError (whatever its message
// says). Pure.
bool IsDeviceOutOfMemory(const absl::Status& status);

}  // namespace curvd::core

#endif  // CURVD_CORE_API_OUT_OF_MEMORY_H_

// The one place in core where LibTorch exceptions become absl::Status. Internal
// to core: callers at the engine boundary catch everything and convert it here.
#ifndef CURVD_CORE_TORCH_STATUS_H_
#define CURVD_CORE_TORCH_STATUS_H_

#include <exception>

#include "absl/status/status.h"

namespace curvd::core {

// Converts an exception to a status: a CUDA (or host) out-of-memory error
// becomes ResourceExhausted, any other c10::Error InvalidArgument (it comes
// from evaluating the client's model on the client's data), anything else
// Internal. The message is torch's, without its C++ backtrace. Thread-safe.
absl::Status StatusFromException(std::exception_ptr exception);

// True for the statuses StatusFromException makes of out-of-memory errors: the
// engine retries those with smaller micro-batches.
bool IsOutOfMemory(const absl::Status& status);

}  // namespace curvd::core

#endif  // CURVD_CORE_TORCH_STATUS_H_

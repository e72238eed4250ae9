// The one place in core where LibTorch exceptions become absl::Status. Internal
// to core: the boundaries (loading a model or a shard, measuring) run their
// work through CatchTorchExceptions.
#ifndef CURVD_CORE_ENGINE_TORCH_STATUS_H_
#define CURVD_CORE_ENGINE_TORCH_STATUS_H_

#include <exception>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace curvd::core {

// Converts an exception to a status: a CUDA (or host) out-of-memory error
// becomes ResourceExhausted, any other c10::Error InvalidArgument (it comes
// from evaluating the client's model on the client's data), anything else
// Internal. The message is torch's, without its C++ backtrace, after
// `context` ("cannot load shard: ") when that is not empty. Thread-safe.
absl::Status StatusFromException(std::exception_ptr exception,
                                 absl::string_view context = "");

// Calls `work` (returning absl::Status or absl::StatusOr<T>) and returns what
// it returns, or, if it throws, StatusFromException(the exception, context):
// nothing torch throws gets past it. Thread-safe if `work` is.
template <typename Work>
std::invoke_result_t<Work> CatchTorchExceptions(
    Work&& work, absl::string_view context = "") {
  try {
    return std::forward<Work>(work)();
  } catch (...) {
    return StatusFromException(std::current_exception(), context);
  }
}

// True for the statuses StatusFromException makes of out-of-memory errors: the
// engine retries those with smaller micro-batches.
bool IsOutOfMemory(const absl::Status& status);

}  // namespace curvd::core

#endif  // CURVD_CORE_ENGINE_TORCH_STATUS_H_

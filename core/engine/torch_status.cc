#include "core/engine/torch_status.h"

#include <c10/util/Exception.h>

#include <new>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace curvd::core {
namespace {

constexpr char kOutOfMemoryPrefix[] = "out of memory: ";

// Messages of a plain c10::Error that mean the device ran out of memory: older
// CUDA builds raise one for an exhausted allocator, and cuBLAS and cuDNN
// report a failed allocation of their own (a handle or workspace created
// lazily at a measurement's first matmul or convolution) under their own
// status names.
constexpr const char* kOutOfMemoryMarkers[] = {
    "CUDA out of memory", "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED", "cudaErrorMemoryAllocation"};

bool SaysOutOfMemory(const std::string& message) {
  for (const char* marker : kOutOfMemoryMarkers) {
    if (absl::StrContains(message, marker)) return true;
  }
  return false;
}

// Torch messages can run to pages (a TorchScript traceback); the first few
// lines say what went wrong.
std::string Shorten(const std::string& message) {
  constexpr size_t kMaxChars = 2000;
  if (message.size() <= kMaxChars) return message;
  return absl::StrCat(message.substr(0, kMaxChars), " [...]");
}

absl::Status ConvertException(std::exception_ptr exception) {
  try {
    std::rethrow_exception(exception);
  } catch (const c10::OutOfMemoryError& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat(kOutOfMemoryPrefix, Shorten(e.what_without_backtrace())));
  } catch (const c10::Error& e) {
    std::string message = e.what_without_backtrace();
    if (SaysOutOfMemory(message)) {
      return absl::ResourceExhaustedError(
          absl::StrCat(kOutOfMemoryPrefix, Shorten(message)));
    }
    return absl::InvalidArgumentError(Shorten(message));
  } catch (const std::bad_alloc& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat(kOutOfMemoryPrefix, "host allocation failed"));
  } catch (const std::exception& e) {
    return absl::InternalError(Shorten(e.what()));
  } catch (...) {
    return absl::InternalError("unknown exception");
  }
}

}  // namespace

absl::Status StatusFromException(std::exception_ptr exception,
                                 absl::string_view context) {
  const absl::Status status = ConvertException(exception);
  if (context.empty()) return status;
  return absl::Status(status.code(), absl::StrCat(context, status.message()));
}

bool IsOutOfMemory(const absl::Status& status) {
  return status.code() == absl::StatusCode::kResourceExhausted &&
         absl::StartsWith(status.message(), kOutOfMemoryPrefix);
}

}  // namespace curvd::core

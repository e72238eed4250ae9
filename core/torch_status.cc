#include "core/torch_status.h"

#include <c10/util/Exception.h>

#include <new>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace curvd::core {
namespace {

constexpr char kOutOfMemoryPrefix[] = "out of memory: ";

// Torch messages can run to pages (a TorchScript traceback); the first few
// lines say what went wrong.
std::string Shorten(const std::string& message) {
  constexpr size_t kMaxChars = 2000;
  if (message.size() <= kMaxChars) return message;
  return absl::StrCat(message.substr(0, kMaxChars), " [...]");
}

}  // namespace

absl::Status StatusFromException(std::exception_ptr exception) {
  try {
    std::rethrow_exception(exception);
  } catch (const c10::OutOfMemoryError& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat(kOutOfMemoryPrefix, Shorten(e.what_without_backtrace())));
  } catch (const c10::Error& e) {
    std::string message = e.what_without_backtrace();
    // Older CUDA builds raise a plain c10::Error for an exhausted allocator.
    if (absl::StrContains(message, "CUDA out of memory")) {
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

bool IsOutOfMemory(const absl::Status& status) {
  return status.code() == absl::StatusCode::kResourceExhausted &&
         absl::StartsWith(status.message(), kOutOfMemoryPrefix);
}

}  // namespace curvd::core

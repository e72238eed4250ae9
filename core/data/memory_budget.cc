#include "core/data/memory_budget.h"

#include "absl/strings/str_cat.h"

namespace curvd::core {

absl::Status MemoryBudget::Charge(const std::string& what, int64_t bytes) {
  int64_t total = 0;
  if (limit_ > 0 &&
      (__builtin_add_overflow(charged_, bytes, &total) || total > limit_)) {
    const int64_t over = total > limit_ ? total - limit_ : bytes;
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " needs ", bytes, " bytes of host memory, ", over,
        " bytes more than is left (", limit_ - charged_, " bytes) of the ",
        limit_,
        "-byte budget of one measurement (--measurement_host_memory_bytes)"));
  }
  charged_ += bytes;
  return absl::OkStatus();
}

}  // namespace curvd::core

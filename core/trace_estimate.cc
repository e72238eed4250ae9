#include "core/trace_estimate.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace curvd::core {

bool RunningTraceEstimate::Add(double term) {
  const int probe = ++result_.probes;
  const double delta = term - result_.trace;
  result_.trace += delta / probe;
  sum_squared_deviations_ += delta * (term - result_.trace);
  result_.standard_error =
      probe > 1 ? std::sqrt(sum_squared_deviations_ / (probe - 1) / probe)
                : 0.0;
  if (probe < trace_.min_probes || trace_.target_relative_error <= 0) {
    return false;
  }
  if (sum_squared_deviations_ == 0) {
    result_.stop_reason = "exact_zero_variance";
    stopped_ = true;
    return true;
  }
  if (result_.standard_error <=
      trace_.target_relative_error * std::abs(result_.trace)) {
    result_.stop_reason = "target_relative_error";
    stopped_ = true;
    return true;
  }
  return false;
}

absl::StatusOr<int> RunningTraceEstimate::AddKnown(
    absl::Span<const double> terms, int max_probes) {
  const int count =
      static_cast<int>(std::min<size_t>(terms.size(), std::max(max_probes, 0)));
  for (int i = 0; i < count; ++i) {
    if (!std::isfinite(terms[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("the known term of probe ", i + 1, " is not finite"));
    }
    if (Add(terms[i])) return i + 1;
  }
  return count;
}

}  // namespace curvd::core

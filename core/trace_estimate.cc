#include "core/trace_estimate.h"

#include <cmath>

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
    return true;
  }
  if (result_.standard_error <=
      trace_.target_relative_error * std::abs(result_.trace)) {
    result_.stop_reason = "target_relative_error";
    return true;
  }
  return false;
}

}  // namespace curvd::core

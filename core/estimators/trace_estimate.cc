#include "core/estimators/trace_estimate.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/objective/linear_operator.h"

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

absl::StatusOr<TraceResult> EstimateTrace(
    const ProbeTermEstimator& estimator, int64_t size,
    const torch::TensorOptions& options, const TraceOptions& trace,
    const Progress& progress, absl::Span<const double> known_terms) {
  const std::string& name = estimator.name;
  if (size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " needs a non-empty operator, got size ", size));
  }
  if (estimator.block_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " block size must be >= 1, got ", estimator.block_size));
  }
  at::Generator generator = SeededGenerator(trace.seed);
  RunningTraceEstimate estimate(trace);
  CURVD_ASSIGN_OR_RETURN(const int known,
                         estimate.AddKnown(known_terms, trace.max_probes));
  if (estimate.stopped()) return estimate.result();
  // The known terms are of the stream's first probes: continue after them.
  SkipProbes(known, generator);
  for (int done = known; done < trace.max_probes;) {
    if (progress.cancelled && progress.cancelled()) {
      return absl::CancelledError(
          absl::StrCat("cancelled at ", name, " probe ", done + 1));
    }
    if (progress.report) {
      progress.report(
          static_cast<double>(done) / trace.max_probes,
          absl::StrFormat("%s probe %d/%d", name, done + 1, trace.max_probes));
    }
    const int count = std::min(estimator.block_size, trace.max_probes - done);
    const torch::Tensor probes =
        RandomProbes(count, size, trace.distribution, generator, options);
    CURVD_ASSIGN_OR_RETURN(const torch::Tensor on_device,
                           estimator.terms(probes));
    // The block's only wait for the device.
    const torch::Tensor terms =
        on_device.to(torch::kCPU, torch::kFloat64).contiguous();
    const auto term_at = terms.accessor<double, 1>();
    for (int i = 0; i < count; ++i) {
      const int probe = done + i + 1;
      const double term = term_at[i];
      if (!std::isfinite(term)) {
        return absl::InvalidArgumentError(absl::StrCat(
            estimator.term, " of ", name, " probe ", probe, " is not finite"));
      }
      if (estimate.Add(term)) return estimate.result();
    }
    done += count;
  }
  return estimate.result();
}

}  // namespace curvd::core

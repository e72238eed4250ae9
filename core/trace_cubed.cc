#include "core/trace_cubed.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"

namespace curvd::core {

absl::StatusOr<TraceResult> TraceCubed(const LinearOperator& op, int64_t size,
                                       const torch::TensorOptions& options,
                                       const TraceOptions& trace,
                                       const Progress& progress) {
  if (size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tr(H^3) needs a non-empty operator, got size ", size));
  }
  if (trace.max_probes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tr(H^3) max_probes must be >= 1, got ", trace.max_probes));
  }
  at::Generator generator = SeededGenerator(trace.seed);
  TraceResult result;
  double mean = 0;
  double sum_squared_deviations = 0;  // Welford's M2
  for (int probe = 1; probe <= trace.max_probes; ++probe) {
    if (progress.cancelled && progress.cancelled()) {
      return absl::CancelledError(
          absl::StrCat("cancelled at tr(H^3) probe ", probe));
    }
    if (progress.report) {
      progress.report(
          static_cast<double>(probe - 1) / trace.max_probes,
          absl::StrFormat("tr(H^3) probe %d/%d", probe, trace.max_probes));
    }
    const torch::Tensor v =
        RandomProbe(size, trace.distribution, generator, options);
    CURVD_ASSIGN_OR_RETURN(torch::Tensor av, op(v));
    CURVD_ASSIGN_OR_RETURN(torch::Tensor aav, op(av));
    const double term = av.dot(aav).item<double>();
    if (!std::isfinite(term)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "(Av)^T A (Av) of tr(H^3) probe ", probe, " is not finite"));
    }
    const double delta = term - mean;
    mean += delta / probe;
    sum_squared_deviations += delta * (term - mean);

    result.trace = mean;
    result.probes = probe;
    result.standard_error =
        probe > 1 ? std::sqrt(sum_squared_deviations / (probe - 1) / probe)
                  : 0.0;
    if (probe < trace.min_probes || trace.target_relative_error <= 0) continue;
    if (sum_squared_deviations == 0) {
      result.stop_reason = "exact_zero_variance";
      return result;
    }
    if (result.standard_error <= trace.target_relative_error * std::abs(mean)) {
      result.stop_reason = "target_relative_error";
      return result;
    }
  }
  result.stop_reason = "max_probes";
  return result;
}

}  // namespace curvd::core

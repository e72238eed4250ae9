#include "core/estimators/trace_cubed.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/estimators/trace_estimate.h"

namespace curvd::core {

absl::StatusOr<TraceResult> TraceCubed(const LinearOperator& op, int64_t size,
                                       const torch::TensorOptions& options,
                                       const TraceOptions& trace,
                                       const Progress& progress,
                                       absl::Span<const double> known_terms) {
  if (trace.max_probes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tr(H^3) max_probes must be >= 1, got ", trace.max_probes));
  }
  ProbeTermEstimator estimator;
  estimator.name = "tr(H^3)";
  estimator.term = "(Av)^T A (Av)";
  estimator.terms =
      [&op](const torch::Tensor& probes) -> absl::StatusOr<torch::Tensor> {
    // One probe per block: `op` takes one vector.
    CURVD_ASSIGN_OR_RETURN(const torch::Tensor av, op(probes[0]));
    CURVD_ASSIGN_OR_RETURN(const torch::Tensor aav, op(av));
    return av.dot(aav).to(torch::kFloat64).unsqueeze(0);
  };
  return EstimateTrace(estimator, size, options, trace, progress, known_terms);
}

}  // namespace curvd::core

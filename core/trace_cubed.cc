#include "core/trace_cubed.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "core/trace_estimate.h"

namespace curvd::core {

absl::StatusOr<TraceResult> TraceCubed(const LinearOperator& op, int64_t size,
                                       const torch::TensorOptions& options,
                                       const TraceOptions& trace,
                                       const Progress& progress,
                                       absl::Span<const double> known_terms) {
  if (size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tr(H^3) needs a non-empty operator, got size ", size));
  }
  if (trace.max_probes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tr(H^3) max_probes must be >= 1, got ", trace.max_probes));
  }
  at::Generator generator = SeededGenerator(trace.seed);
  RunningTraceEstimate estimate(trace);
  CURVD_ASSIGN_OR_RETURN(const int known,
                         estimate.AddKnown(known_terms, trace.max_probes));
  if (estimate.stopped()) return estimate.result();
  // The known terms are of the stream's first probes: continue after them.
  SkipProbes(known, generator);
  for (int probe = known + 1; probe <= trace.max_probes; ++probe) {
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
    if (estimate.Add(term)) return estimate.result();
  }
  return estimate.result();
}

}  // namespace curvd::core

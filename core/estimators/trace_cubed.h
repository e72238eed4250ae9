// tr(A^3) of a symmetric operator by Hutchinson's estimator. Internal to core
// (includes torch).
#ifndef CURVD_CORE_ESTIMATORS_TRACE_CUBED_H_
#define CURVD_CORE_ESTIMATORS_TRACE_CUBED_H_

#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/api/engine.h"
#include "core/api/measurement.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {

// Estimates tr(A^3) as the mean over probes v of (Av)^T A (Av) = v^T A^3 v,
// which takes two products per probe (v -> Av -> A(Av)) rather than three: A
// is symmetric, so the third product's inner product with v equals the second
// one's with Av. Probes, stopping rules, standard error and stop_reason are
// exactly those of Hutchinson (hutchinson.h) with `trace`: the same seed and
// distribution give the same probes as Hutchinson and as SLQ's start vectors
// (before normalisation), so with Rademacher probes this equals SLQ's
// "x^3" trace on the same seed. Products taken: 2 * result.probes.
//
// Cancellation is polled and progress reported before each probe: Cancelled
// if progress.cancelled() returns true. InvalidArgument for a size < 1,
// max_probes < 1 or a term that is not finite; errors of `op` are returned as
// they are. Thread-compatible.
//
// `known_terms`, when not empty, are the terms v^T A^3 v of the first probes,
// already evaluated by another method on the same probes (SLQ's start
// vectors), used as BlockHutchinson uses its known_terms: products taken are
// then 2 * (result.probes - min(known_terms.size(), result.probes)).
absl::StatusOr<TraceResult> TraceCubed(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const TraceOptions& trace, const Progress& progress,
    absl::Span<const double> known_terms = {});

}  // namespace curvd::core

#endif  // CURVD_CORE_ESTIMATORS_TRACE_CUBED_H_

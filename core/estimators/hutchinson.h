// Hutchinson's stochastic estimator of the trace of a symmetric operator.
// Internal to core (includes torch).
#ifndef CURVD_CORE_ESTIMATORS_HUTCHINSON_H_
#define CURVD_CORE_ESTIMATORS_HUTCHINSON_H_

#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/api/engine.h"
#include "core/api/measurement.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {

// Estimates tr(A) as the mean of v^T A v over random probes v (Rademacher or
// Gaussian, drawn with `trace.seed`; E[v v^T] = I makes each term unbiased) of
// `size` elements with `options`. The standard error is the sample standard
// deviation of the terms over sqrt(probes), kept by Welford's update. After at
// least min_probes it stops with stop_reason "exact_zero_variance" when every
// term was equal (a diagonal A under Rademacher probes gives tr(A) each time)
// or "target_relative_error" once standard_error <= target * |trace|, both only
// when target_relative_error > 0; otherwise at max_probes with "max_probes".
// Cancellation is polled and progress reported before each probe: Cancelled if
// progress.cancelled() returns true. Errors of `op` are returned as they are;
// InvalidArgument, naming the probe, if v^T A v is not finite.
// Thread-compatible.
absl::StatusOr<TraceResult> Hutchinson(const LinearOperator& op, int64_t size,
                                       const torch::TensorOptions& options,
                                       const TraceOptions& trace,
                                       const Progress& progress);

// Hutchinson with the probes applied `block_size` (>= 1) at a time through
// `op`. The probes, the terms and the stopping rule are Hutchinson's, checked
// after every term, so the result equals Hutchinson's to rounding; the products
// of a block that runs past the stopping point are computed and not counted
// (at most block_size - 1 of them). The host waits for the device once per
// block, to read its terms. Cancellation is polled and progress reported before
// each block. Errors as Hutchinson's; InvalidArgument for block_size < 1.
//
// `known_terms`, when not empty, are the terms v^T A v of the stream's first
// probes, already evaluated by another method on the same probes (SLQ's start
// vectors, see slq.h): they enter the estimate in their place (see
// RunningTraceEstimate::AddKnown), the stream skips those probes, and
// products start at the next one, so the result is the one Hutchinson would
// have computed, to rounding, with result.probes - min(known_terms.size(),
// result.probes) products.
absl::StatusOr<TraceResult> BlockHutchinson(
    const BlockOperator& op, int64_t size, const torch::TensorOptions& options,
    const TraceOptions& trace, const Progress& progress, int block_size,
    absl::Span<const double> known_terms = {});

}  // namespace curvd::core

#endif  // CURVD_CORE_ESTIMATORS_HUTCHINSON_H_

// Hutchinson's stochastic estimator of the trace of a symmetric operator.
// Internal to core (includes torch).
#ifndef CURVD_CORE_HUTCHINSON_H_
#define CURVD_CORE_HUTCHINSON_H_

#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/linear_operator.h"
#include "core/measurement.h"

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
// InvalidArgument if v^T A v is not finite. Thread-compatible.
absl::StatusOr<TraceResult> Hutchinson(const LinearOperator& op, int64_t size,
                                       const torch::TensorOptions& options,
                                       const TraceOptions& trace,
                                       const Progress& progress);

}  // namespace curvd::core

#endif  // CURVD_CORE_HUTCHINSON_H_

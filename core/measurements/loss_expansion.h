// The second-order expansion of the loss change after one noisy SGD-like step
// (LossExpansionOptions in measurement.h). Internal to core (includes torch).
#ifndef CURVD_CORE_MEASUREMENTS_LOSS_EXPANSION_H_
#define CURVD_CORE_MEASUREMENTS_LOSS_EXPANSION_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/api/measurement.h"
#include "core/objective/linear_operator.h"
#include "core/objective/objective.h"

namespace curvd::core {

// InvalidArgument naming the first of rho, h0, ess, num_steps that is not
// finite and > 0. Thread-safe.
absl::Status ValidateLossExpansionOptions(const LossExpansionOptions& options);

// The terms of the expansion from its three measured quantities:
// sigma^2 = 1 / (h0 ess), first = -rho ||g||^2, second = rho^2 / 2 g^T H g,
// noise = rho^2 sigma^2 / (2 N_s) tr(H^3), whose standard error is that
// coefficient times tr(H^3)'s (the only stochastic term, so also the total's).
// InvalidArgument as ValidateLossExpansionOptions. Thread-safe.
absl::StatusOr<LossExpansionResult> ExpandLoss(
    const LossExpansionOptions& options, double gradient_norm_squared,
    double gradient_curvature, const TraceResult& trace_cubed);

// ExpandLoss with g = objective.Gradient() (the block's) and g^T H g by one
// product of `op` (the Hessian or the GGN of `objective`); `trace_cubed` is
// tr(H^3) of the same operator, estimated by the caller (it may come from
// another method of a plan). InvalidArgument for options out of range or a
// non-finite g or g^T H g; errors of `op` as they are. Thread-compatible.
absl::StatusOr<LossExpansionResult> MeasureLossExpansion(
    Objective& objective, const LinearOperator& op,
    const LossExpansionOptions& options, const TraceResult& trace_cubed);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_LOSS_EXPANSION_H_

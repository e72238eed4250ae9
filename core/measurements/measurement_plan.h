// Runs the measurements of one request on one objective: a single kind is a
// plan of one. The methods of a plan share the objective (its retained
// micro-batch graphs) and, where the numbers allow, Lanczos runs and probes.
// Internal to core (includes torch).
#ifndef CURVD_CORE_MEASUREMENTS_MEASUREMENT_PLAN_H_
#define CURVD_CORE_MEASUREMENTS_MEASUREMENT_PLAN_H_

#include <vector>

#include "absl/status/status.h"
#include "core/api/engine.h"
#include "core/api/measurement.h"
#include "core/objective/objective.h"

namespace curvd::core {

// Runs request.methods on `objective`, every method on the operator of
// request.op (objective.Hvp(s) or Ggnvp(s)), and sets result->methods to them
// with their results, and result->shared. The methods run in Method's order
// (measurement_methods.h), so that what one method shares is ready for the
// next and the loss slice, whose LossAlong frees the retained graphs, comes
// after them, then gop (MeasureGop: per-sample gradients, not the operator)
// with the graphs freed for its Gram matrices, and the LLC kinds, which move
// the parameters with the graphs freed (MeasureLlc, MeasureLlcCalibration),
// last. What is shared, each said in result->shared with the products saved:
//  - spectral_density with Rademacher probes gives hessian_trace and trace_h3
//    (or loss_expansion's own tr(H^3)) of the same seed and distribution the
//    terms z^T H z and z^T H^3 z of its start vectors, exact from the
//    quadrature, as their first probes;
//  - loss_expansion takes tr(H^3) from trace_h3 when their options are equal;
//  - loss_slice takes the top eigenvector of the sharpness Lanczos run;
//  - all methods share the objective and its retained graphs.
// In train mode (request.objective.train_mode) the plan first checks that
// the operator is one fixed matrix (CheckOperatorIsFixed, operator_check.h:
// two products with one vector, graphs rebuilt for each, 2 of objective.hvps())
// and sets result->operator_check_difference; FailedPrecondition when it is
// not, before any method runs.
// Progress: each method reports into an equal share of [0, 1]; cancellation
// is polled by every method. Errors: those of the methods (InvalidArgument for
// options out of range, an exact Hessian over its cap, non-finite products;
// Cancelled), and ValidateRequest's. Thread-compatible.
// `chain_helpers`, objectives like `objective` on other devices (each over
// the whole shard), take a share of the llc kind's chains (MeasureLlc over
// several objectives); the other kinds use `objective` alone.
absl::Status RunMeasurementPlan(
    Objective& objective, const MeasurementRequest& request,
    const Progress& progress, MeasurementResult* result,
    const std::vector<Objective*>& chain_helpers = {});

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_MEASUREMENT_PLAN_H_

// The trace of a symmetric operator to a requested standard error, choosing
// between Hutch++ and plain Hutchinson from the products already computed
// (ADR 0022). Internal to core (includes torch).
#ifndef CURVD_CORE_ESTIMATORS_ADAPTIVE_TRACE_H_
#define CURVD_CORE_ESTIMATORS_ADAPTIVE_TRACE_H_

#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/spectral_measurement.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {

// Estimates tr(A) for `op`, an operator on vectors of `size` elements with
// `options`, to the requested standard error within adaptive.max_hvps
// products. Probes (adaptive.distribution) come from
// SeededGenerator(adaptive.seed). It sketches k0 = initial_sketch_size
// columns A S (each sketch probe s also gives a Hutchinson term s^T A s).
// Unless they span the space, it first guesses from their two halves what a
// basis of them would hold of |A|_F^2 and takes Hutchinson at once where that
// wins even against the guess (or the budget leaves no room for the sketch);
// else it orthonormalises them in float64 into Q and takes tr(Q^T A Q) and
// |A Q|_F^2 exactly (k0 more products). It then predicts, in products, what each option
// still costs to reach the target: Hutchinson continuing from the sketch
// probes' terms (2 (|A|_F^2 - |diag A|^2) for Rademacher probes, 2 |A|_F^2
// for Gaussian ones, both estimated from the sketch products, over the
// target SE squared, less the terms it has); Hutch++
// with the current Q (2 max(|A|_F^2 - |A Q|_F^2, 0) over the target SE
// squared); and doubling the sketch (its 2k products plus
// the residual cost shrunk by the ratio the last growth achieved). It takes
// the cheapest, doubling until that no longer pays or the budget would not
// leave min_probes residual probes, and then runs that option's probes,
// stopping after min_probes with the target's reason once it is met,
// "exact_zero_variance" when every term was equal, else "max_hvps".
// The sketch is held on the device (at most size columns).
//
// Cancellation is polled and progress reported before every product:
// Cancelled if progress.cancelled() returns true. InvalidArgument for a size
// < 1, initial_sketch_size < 1, min_probes < 1, max_hvps <
// initial_sketch_size + 2, a negative target, no target set, or a product
// that is not finite; errors of `op` are returned as they are.
// Thread-compatible.
absl::StatusOr<AdaptiveTraceResult> AdaptiveTrace(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const AdaptiveTraceOptions& adaptive, const Progress& progress);

}  // namespace curvd::core

#endif  // CURVD_CORE_ESTIMATORS_ADAPTIVE_TRACE_H_

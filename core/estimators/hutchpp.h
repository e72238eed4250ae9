// Hutch++ (Meyer, Musco, Musco and Woodruff 2021): the trace of a symmetric
// operator as the exact trace on a sketched dominant subspace plus Hutchinson
// on the rest. Internal to core (includes torch).
#ifndef CURVD_CORE_ESTIMATORS_HUTCHPP_H_
#define CURVD_CORE_ESTIMATORS_HUTCHPP_H_

#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/spectral_measurement.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {

// Estimates tr(A) for `op`, an operator on vectors of `size` elements with
// `options`, within hutchpp.max_hvps products. With k = sketch_size (max_hvps
// / 3 when 0), capped at size: draws k probes S (hutchpp.distribution, from
// SeededGenerator(hutchpp.seed)), forms Q = orth(A S) by a reduced QR in
// float64 (k products), takes tr(Q^T A Q) exactly (k products), then runs
// Hutchinson on the deflated (I - QQ^T) A (I - QQ^T) with probes g drawn next
// from the same generator, one product each, up to max_hvps - 2k of them:
// after min_residual_probes it stops with "target_relative_error" once the
// residual part's standard error (sample standard deviation of its terms over
// sqrt(probes), conditional on Q) is <= target_relative_error * |trace|, or
// "exact_zero_variance" when every residual term was equal, both only when
// target_relative_error > 0; otherwise "max_hvps". The k x size sketch and
// its products are held on the device. The result also says whether the
// sketch paid off: an estimate of |A|_F^2 from the norms of the products
// already computed, the fraction of it the sketch holds, and the standard
// error plain Hutchinson would have had with the same products.
//
// Cancellation is polled and progress reported before every product:
// Cancelled if progress.cancelled() returns true. InvalidArgument for a size
// < 1, max_hvps < 3, sketch_size < 0 or 2 * sketch_size >= max_hvps (no
// product left for the residual), min_residual_probes < 1, a negative
// target, or a product that is not finite; errors of `op` are returned as
// they are. Thread-compatible.
absl::StatusOr<HutchppResult> HutchPlusPlus(const LinearOperator& op,
                                            int64_t size,
                                            const torch::TensorOptions& options,
                                            const HutchppOptions& hutchpp,
                                            const Progress& progress);

}  // namespace curvd::core

#endif  // CURVD_CORE_ESTIMATORS_HUTCHPP_H_

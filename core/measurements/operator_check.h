// Whether a curvature operator is one fixed matrix: two products with the
// same vector must agree to rounding. A forward pass that draws randomness
// the objective does not control (a generator of the model's own) gives a new
// matrix at every product, and every method's numbers would be those of no
// matrix at all. Internal to core (includes torch).
#ifndef CURVD_CORE_MEASUREMENTS_OPERATOR_CHECK_H_
#define CURVD_CORE_MEASUREMENTS_OPERATOR_CHECK_H_

#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {

// The largest relative difference ||A v - A v'|| / ||A v|| two products of a
// fixed operator with vectors of `options` may show: sqrt(eps) of their dtype
// (3.5e-4 in float32 and TF32, 1.5e-8 in float64). The same computation
// repeated differs only where the order of a sum changes (GPU atomics,
// split reductions): a few hundred eps at most, also after cancellation. A
// redrawn dropout mask changes the product by a fraction of order the
// dropout probability. sqrt(eps) lies decades from both. Thread-safe.
double FixedOperatorTolerance(const torch::TensorOptions& options);

// Applies `op` twice to one Gaussian vector (RandomProbe of seed `seed`) of
// `size` elements with `options`, and returns the relative difference
// ||A v - A v'|| / ||A v|| (0 when both are 0), at one device
// synchronisation. FailedPrecondition, with the difference, the tolerance and
// the likely cause (randomness in the model's forward pass that torch's
// default generator does not drive, such as a generator of the model's own),
// when it exceeds FixedOperatorTolerance(options); InvalidArgument when a
// product is not finite; errors of `op` as they are. Thread-compatible.
absl::StatusOr<double> CheckOperatorIsFixed(const LinearOperator& op,
                                            int64_t size,
                                            const torch::TensorOptions& options,
                                            uint64_t seed);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_OPERATOR_CHECK_H_

// The eigenvalues of largest magnitude of a symmetric operator by power
// iteration with deflation, as older tools (PyHessian) compute them; kept for
// comparison with Lanczos, which needs far fewer products. Internal to core
// (includes torch).
#ifndef CURVD_CORE_ESTIMATORS_POWER_ITERATION_H_
#define CURVD_CORE_ESTIMATORS_POWER_ITERATION_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/spectral_measurement.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {

// Finds power.top_k eigenpairs of `op` (vectors of `size` elements with
// `options`) one after another. Pair i starts from a Gaussian vector (drawn
// from SeededGenerator(power.seed)) and iterates v <- P A v / ||P A v||, P the
// projector onto the complement of the pairs already found (deflation by
// projection, as PyHessian orthogonalises against them), so it converges to the
// eigenvalue of largest |lambda| left, at the rate |lambda_next / lambda|.
// Each iteration is one product w = A v, value = v^T w; it converges when
// ||P w - value v|| <= relative_tolerance * max(|value|, eps^(2/3) * the
// largest |value| seen), eps of options' dtype (the floor lets an eigenvalue
// at 0 converge, as in Lanczos), or when P w = 0. residual_norm is reported for
// A itself,
// ||A v - value v||, the residual a user can check. Gives up on a pair, with
// converged = false, after max_iterations, and goes on to the next.
// top_k is capped at size. If `eigenvectors` is not null it receives the unit
// vectors (options' device and dtype), one per pair.
//
// Cancellation is polled and progress reported before every product:
// Cancelled if progress.cancelled() returns true. InvalidArgument for a size
// < 1, top_k < 1, max_iterations < 1, relative_tolerance outside (0, 1), or a
// product that is not finite; errors of `op` are returned as they are.
// Thread-compatible.
absl::StatusOr<PowerIterationResult> PowerIteration(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const PowerIterationOptions& power, const Progress& progress,
    std::vector<torch::Tensor>* eigenvectors = nullptr);

}  // namespace curvd::core

#endif  // CURVD_CORE_ESTIMATORS_POWER_ITERATION_H_

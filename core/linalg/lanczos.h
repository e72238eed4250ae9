// Extreme eigenvalues of a symmetric operator by the Lanczos method with full
// reorthogonalisation. Internal to core (includes torch).
#ifndef CURVD_CORE_LINALG_LANCZOS_H_
#define CURVD_CORE_LINALG_LANCZOS_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/measurement.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {

// Runs Lanczos on `op`, an operator on vectors of `size` elements with
// `options` (device, dtype), from a Gaussian start vector drawn with
// `lanczos.seed`. Each new Lanczos vector is orthogonalised against all
// previous ones by classical Gram-Schmidt applied twice. After every step the
// tridiagonal matrix T_m is solved in float64 on the CPU; the Ritz pair
// (theta_i, s_i) has residual estimate |beta_m s_mi| and is converged when that
// is <= tol * max(|theta_i|, eps^(2/3) ||T_m||), eps of the working dtype (the
// floor, as in ARPACK, lets eigenvalues at 0 converge). Lanczos stops when the
// top_k largest and bottom_k smallest Ritz pairs are all converged, or after
// min(max_iterations, size) steps. A breakdown (beta_m at rounding level) means
// the Krylov space is invariant: its Ritz pairs are exact (residual 0) and, if
// more pairs are wanted, Lanczos goes on from a fresh random vector orthogonal
// to it. A single start vector sees one direction of each eigenspace, so an
// eigenvalue of multiplicity > 1 can appear fewer times than its multiplicity
// among the top_k (bottom_k).
//
// Returns top (descending) and bottom (ascending) with min(k, steps) entries
// each. Progress is reported and cancellation polled before each step:
// Cancelled if progress.cancelled() returns true. Errors of `op` are returned
// as they are; InvalidArgument, naming the step, if a product is not finite.
// Each step is one product and one wait for the device (to read alpha and
// beta), by LanczosKernel, whose basis and reorthogonalisation reuse their
// buffers; a restart costs one more wait.
//
// When `top_eigenvectors` is not null it receives (replacing its contents) the
// unit Ritz vectors, with `options`, of the returned top pairs in the same
// order, from the basis kept for reorthogonalisation: ||A y - theta y|| is the
// pair's residual_norm, to rounding. One dense m x m eigensolve and an
// [k, m] x [m, size] product at the end; null costs nothing. The caller owns
// the vector; it is left untouched on error.
// Thread-compatible.
absl::StatusOr<SharpnessResult> Lanczos(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const LanczosOptions& lanczos, const Progress& progress,
    std::vector<torch::Tensor>* top_eigenvectors = nullptr);

}  // namespace curvd::core

#endif  // CURVD_CORE_LINALG_LANCZOS_H_

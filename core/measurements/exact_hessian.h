// The explicit matrix of a small symmetric operator (a Hessian from
// unit-vector HVPs) and its full spectrum in float64: rank, condition number
// and log-determinant. Internal to core (includes torch).
#ifndef CURVD_CORE_MEASUREMENTS_EXACT_HESSIAN_H_
#define CURVD_CORE_MEASUREMENTS_EXACT_HESSIAN_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/spectral_measurement.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {

// The P x P matrix of `op` (P = size, vectors with `options`), float64 on the
// CPU: row i is op(e_i), rows gathered on the device `block_size` at a time
// and copied to the host per block. It is then symmetrised in place,
// (M + M^T) / 2, tile by tile (no second P x P buffer); *asymmetry (if not
// null) receives max |M_ij - M_ji| / max |M_ij| from before (0 for M = 0).
// Host memory: 8 P^2 bytes. Cancellation is polled and progress reported
// before every product: Cancelled if progress.cancelled() returns true.
// InvalidArgument for size < 1, block_size < 1 or a product that is not
// finite; errors of `op` are returned as they are. Thread-compatible.
absl::StatusOr<torch::Tensor> AssembleSymmetricMatrix(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    int block_size, const Progress& progress, double* asymmetry);

// Summarises an ascending spectrum of a P x P symmetric matrix whose entries
// carry rounding of unit roundoff `unit_roundoff` (that of the dtype the
// products were computed in; `dtype_name` names it in the rule). Rank counts
// |lambda| > tolerance = max |lambda| * P * unit_roundoff (the rule of
// numpy.linalg.matrix_rank and LAPACK's, with eigenvalues for singular
// values), stated in rank_rule with its numbers; positive and negative count
// the eigenvalues beyond +-tolerance; condition_number is max |lambda| / min
// |lambda| over those counted (NaN if none); log_determinant_positive is the
// sum of log lambda over lambda > tolerance. Fills eigenvalues,
// num_parameters, rank*, positive, negative, condition_number and
// log_determinant_positive only. Thread-safe.
ExactHessianResult SummariseSpectrum(std::vector<double> eigenvalues,
                                     double unit_roundoff,
                                     const std::string& dtype_name);

// The exact Hessian of a small model: AssembleSymmetricMatrix (P products),
// eigvalsh in float64 on the CPU, SummariseSpectrum with the unit roundoff of
// options' dtype; the matrix itself is copied out when exact.return_matrix.
// eigvalsh is O(P^3) and cannot be cancelled once started (minutes at P =
// 20,000). InvalidArgument when size < 1, size > exact.max_parameters (the
// cap), return_matrix with size > max_matrix_parameters, block_size < 1, or a
// product is not finite; Cancelled and errors of `op` as in
// AssembleSymmetricMatrix. Thread-compatible.
absl::StatusOr<ExactHessianResult> ExactHessian(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const ExactHessianOptions& exact, const Progress& progress);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_EXACT_HESSIAN_H_

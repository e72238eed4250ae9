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

// The rank rule's numbers (README "The exact Hessian's rank" gives the
// reasoning). The tolerance is kRankNoiseFactor times the noise estimate:
// that covers rounding whose symmetric part exceeds its measured
// antisymmetric part (errors of H_ij and H_ji correlated up to 0.98) and the
// power iteration's underestimate of the norm.
inline constexpr double kRankNoiseFactor = 10;
// The cut is clear when the rank is the same at tolerance / kRankDecade and
// at tolerance * kRankDecade, or when the gap across the cut spans at least
// kClearGapDecades decades.
inline constexpr double kRankDecade = 10;
inline constexpr double kClearGapDecades = 2;
// Power-iteration steps of MatrixAsymmetry.spectral_norm.
inline constexpr int kAsymmetryNormSteps = 20;

// What AssembleSymmetricMatrix measured of the assembled matrix M before
// symmetrising it: its antisymmetric part is a direct sample of the rounding
// of the products.
struct MatrixAsymmetry {
  // max |M_ij - M_ji| / max |M_ij| (0 for M = 0).
  double max_relative = 0;
  // ||(M - M^T) / 2||_2 by kAsymmetryNormSteps steps of power iteration from
  // a seeded Gaussian vector: deterministic, and at most a few percent low
  // (the antisymmetric part of rounding has a flat spectrum without a gap).
  double spectral_norm = 0;
};

// The P x P matrix of `op` (P = size, vectors with `options`), float64 on the
// CPU: row i is op(e_i), rows gathered on the device `block_size` at a time
// and copied to the host per block. It is then symmetrised in place,
// (M + M^T) / 2, tile by tile (no second P x P buffer); *asymmetry (if not
// null) receives what M's antisymmetric part was (2 kAsymmetryNormSteps
// host matrix-vector products, against eigvalsh's O(P^3)). Host memory:
// 8 P^2 bytes. Cancellation is polled and progress reported before every
// product: Cancelled if progress.cancelled() returns true. InvalidArgument
// for size < 1, block_size < 1 or a product that is not finite; errors of
// `op` are returned as they are. Thread-compatible.
absl::StatusOr<torch::Tensor> AssembleSymmetricMatrix(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    int block_size, const Progress& progress, MatrixAsymmetry* asymmetry);

// The rounding that a spectrum of an assembled matrix carries.
struct SpectrumNoise {
  double epsilon = 0;         // machine epsilon of the products' dtype
  std::string dtype_name;     // names that dtype in the rules: "float32"
  double asymmetry_norm = 0;  // MatrixAsymmetry.spectral_norm
};

// Summarises an ascending spectrum of a P x P symmetric matrix H whose entries
// carry the rounding described by `noise`. The noise estimate is
// noise_scale = max(asymmetry_norm, epsilon * ||H||_F) (||H||_F from the
// eigenvalues); rank counts |lambda| > rank_tolerance =
// max(kRankNoiseFactor * noise_scale, max |lambda| * P * eps_float64), the
// floor being eigvalsh's own rounding (numpy.linalg.matrix_rank's rule in
// float64), stated in rank_rule with its numbers. worst_case_tolerance =
// max |lambda| * P * epsilon (that rule in the products' dtype) and the rank
// it gives are kept for comparison. positive and negative count the
// eigenvalues beyond +-rank_tolerance; condition_number is max |lambda| /
// min |lambda| over those counted (NaN if none); log_determinant_positive is
// the sum of log lambda over lambda > rank_tolerance. The cut's clarity:
// rank_gap_decades = log10(smallest counted |lambda| / largest uncounted),
// with rank_tolerance standing in for an empty side (+inf when the largest
// uncounted is 0); the ranks at rank_tolerance / kRankDecade and *
// kRankDecade; rank_clear_cut when those two agree or the gap spans
// kClearGapDecades, else false with rank_warning saying why. Fills the
// eigenvalues, num_parameters and the rank fields only. Thread-safe.
ExactHessianResult SummariseSpectrum(std::vector<double> eigenvalues,
                                     const SpectrumNoise& noise);

// The exact Hessian of a small model: AssembleSymmetricMatrix (P products),
// eigvalsh in float64 on the CPU, SummariseSpectrum with the rounding of
// options' dtype and the asymmetry measured; the matrix itself is copied out
// when exact.return_matrix. eigvalsh is O(P^3) and cannot be cancelled once
// started (minutes at P = 20,000). InvalidArgument when size < 1, size >
// exact.max_parameters (the cap), return_matrix with size >
// max_matrix_parameters, block_size < 1, or a product is not finite; Cancelled
// and errors of `op` as in AssembleSymmetricMatrix. Thread-compatible.
absl::StatusOr<ExactHessianResult> ExactHessian(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const ExactHessianOptions& exact, const Progress& progress);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_EXACT_HESSIAN_H_

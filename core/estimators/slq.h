// Spectral density and traces of functions of a symmetric operator by
// stochastic Lanczos quadrature (Golub and Meurant; Ubaru, Chen and Saad 2017;
// Ghorbani, Krishnan and Xiao 2019). Internal to core (includes torch).
#ifndef CURVD_CORE_ESTIMATORS_SLQ_H_
#define CURVD_CORE_ESTIMATORS_SLQ_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/spectral_measurement.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {

// Runs slq.runs independent Lanczos runs of min(slq.steps, size) steps on `op`,
// an operator on vectors of `size` elements with `options` (device, dtype).
// Run r starts from v = z / ||z||, z the r-th probe of slq.distribution drawn
// by RandomProbe from SeededGenerator(slq.seed) (one probe per run, nothing
// else drawn), so Hutchinson or TraceCubed with the same seed and distribution
// see the same z. Every Lanczos vector is orthogonalised against all previous
// ones (classical Gram-Schmidt twice, by LanczosKernel: one wait for the device
// per step, into a basis allocated once), which keeps the quadrature exact:
// sum_j tau_j^2 theta_j^k = v^T H^k v for k <= 2 steps - 1. A run stops early
// at a breakdown, beta_j <= sqrt(eps) ||T_j|| (eps of options' dtype), marked
// SlqRun.invariant: the Krylov space is invariant up to a coupling whose effect
// on every moment is of relative size eps, so the quadrature is exact for
// every f to rounding.
//
// Returns per run the Ritz nodes and weights and the tridiagonal T (with
// beta_m), the Gaussian-broadened density (BroadenedDensity) and
// SpectralEstimates (QuadratureEstimates) of x, x^2, x^3, log|x| and
// 1{|x|>t}, t = max(slq.log_threshold, sqrt(eps) * max |Ritz value|) with its
// rule (RankThreshold), and the rank's systematic bounds and reliability
// (BoundRank; slq_rank.h gives the reasoning); each trace is P times the
// mean over runs of v^T f(H) v, P = size. For Rademacher z (||z||^2 = P) the
// traces of x and x^3 are exactly the Hutchinson means of z^T H z and
// z^T H^3 z. hvps counts the products taken (runs * steps, less at
// breakdowns).
//
// Cancellation is polled and progress reported before every product:
// Cancelled if progress.cancelled() returns true. InvalidArgument for a size
// < 1 or an option out of range (runs or steps < 1, grid_points < 2, sigma <
// 0, grid_min >= grid_max when set, log_threshold <= 0 when set) or a product
// that is not finite; errors of `op` are returned as they are.
// Thread-compatible.
absl::StatusOr<SlqResult> StochasticLanczosQuadrature(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const SlqOptions& slq, const Progress& progress);

// The Gauss quadrature of the symmetric tridiagonal T (`alphas` on the
// diagonal, `betas` off it, one fewer): nodes are T's eigenvalues (ascending)
// and weights the squared first components of its unit eigenvectors, which sum
// to 1. Solved by SolveTridiagonal on T reversed (J T J, J the exchange matrix,
// has the same eigenvalues and eigenvectors J s, whose last components are the
// first components of s). Sets nodes, weights and steps (= alphas.size()).
// InvalidArgument for inconsistent sizes or non-finite entries. Thread-safe.
absl::StatusOr<SlqRun> GaussQuadrature(const std::vector<double>& alphas,
                                       const std::vector<double>& betas);

// The mean over `runs` of the per-run densities sum_j tau_j^2 N(x; theta_j,
// sigma^2) on the grid of `slq` (grid_points, grid_min, grid_max, sigma,
// sigma_fraction; see SlqOptions), so that it integrates to 1 up to the mass
// outside the grid and the quadrature error of the grid (negligible for the
// automatic grid, whose spacing is far below sigma). Users can re-broaden the
// raw runs with this. InvalidArgument for no runs, a run without nodes, or
// options out of range. Thread-safe.
absl::StatusOr<SlqDensity> BroadenedDensity(const std::vector<SlqRun>& runs,
                                            const SlqOptions& slq);

// For f in x, x^2, x^3, log|x| (nodes with |x| > log_threshold only) and
// 1{|x| > log_threshold}: mean = mean over runs of sum_j tau_j^2 f(theta_j),
// trace = num_parameters * mean, standard_error = num_parameters * sample
// standard deviation over runs / sqrt(runs) (0 for one run). Empty for no
// runs. Thread-safe.
std::vector<SpectralEstimate> QuadratureEstimates(
    const std::vector<SlqRun>& runs, int64_t num_parameters,
    double log_threshold);

}  // namespace curvd::core

#endif  // CURVD_CORE_ESTIMATORS_SLQ_H_

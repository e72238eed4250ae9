// Options and results of the spectral measurements of issue 5 (SLQ density,
// Hutch++, tr(H^3), exact small Hessians, power iteration) and of issue 17's
// trace to a standard error. Plain structs, no
// torch, like measurement.h: the server translates them to and from the proto.
// The algorithms validate their own options (InvalidArgument naming the
// field), so a request can be checked by the engine before any work is done.
#ifndef CURVD_CORE_API_SPECTRAL_MEASUREMENT_H_
#define CURVD_CORE_API_SPECTRAL_MEASUREMENT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/api/method_types.h"

namespace curvd::core {

// ---- Stochastic Lanczos quadrature (slq.h) ----

struct SlqOptions {
  int runs = 10;    // independent start vectors
  int steps = 100;  // Lanczos steps per run (capped at the operator's size)
  ProbeDistribution distribution = ProbeDistribution::kRademacher;
  uint64_t seed = 0;
  // The broadened density: grid_points >= 2 points on [grid_min, grid_max];
  // both 0 means automatic, [min Ritz value - 6 sigma, max Ritz value + 6
  // sigma].
  int grid_points = 1000;
  double grid_min = 0;
  double grid_max = 0;
  // Gaussian width: sigma > 0 is used as given; sigma = 0 means
  // sigma_fraction * the spread of the Ritz values (see SlqDensity.sigma_rule).
  double sigma = 0;
  double sigma_fraction = 0.01;
  // log|x| and the indicator 1{|x| > t}, the estimate of the rank, count only
  // nodes with |x| > t, t = max(log_threshold, sqrt(eps) * max |Ritz value|)
  // (eps the unit roundoff of the products' dtype; slq_rank.h says why). Unset:
  // the relative rule alone; set (> 0): an absolute floor on t.
  std::optional<double> log_threshold;
};

// The rank estimate's systematic bounds let the cut t move by this factor
// either way (SlqResult.rank_lower, rank_upper).
inline constexpr double kSlqRankCutFactor = 10;
// The rank estimate is flagged unreliable when rank_upper - rank_lower exceeds
// this fraction of it (and one eigenvalue).
inline constexpr double kSlqRankTolerance = 0.01;

// One Lanczos run: the Gauss quadrature of the spectral measure of its unit
// start vector v, sum_j weights[j] f(nodes[j]) ~ v^T f(H) v.
struct SlqRun {
  std::vector<double> nodes;    // Ritz values, ascending
  std::vector<double> weights;  // tau_j^2, first eigenvector components squared
  int steps = 0;           // Lanczos steps taken (< requested at breakdown)
  bool invariant = false;  // broke down: the quadrature is exact for all f
  // The tridiagonal T of the run: its diagonal (steps entries) and couplings
  // (steps entries, the last one beta_m, the coupling the next step would have
  // had: about 0 when invariant). They fix v's moments up to degree 2 steps,
  // which bound the rank (slq_rank.h).
  std::vector<double> alphas;
  std::vector<double> betas;
};

// f's average over the spectrum and P times it, the trace of f(H).
struct SpectralEstimate {
  std::string function;       // "x", "x^2", "x^3", "log|x|", "1{|x|>t}"
  double mean = 0;            // mean over runs of sum_j tau_j^2 f(theta_j)
  double trace = 0;           // P * mean, the estimate of tr(f(H))
  double standard_error = 0;  // of trace, over runs (0 with one run)
};

struct SlqDensity {
  std::vector<double> grid;     // ascending, grid_points entries
  std::vector<double> density;  // mean over runs of sum_j tau_j^2 N(x; theta_j,
                                // sigma^2)
  double sigma = 0;
  std::string sigma_rule;  // how sigma was chosen, with the numbers
};

struct SlqResult {
  std::vector<SlqRun> runs;
  SlqDensity density;
  std::vector<SpectralEstimate> estimates;  // in the order of .function above
  double log_threshold = 0;    // t, the cut of log|x| and of 1{|x|>t}
  std::string threshold_rule;  // how t was chosen, with its numbers
  // Systematic bounds of the rank estimate tr 1{|x|>t} (its "1{|x|>t}"
  // trace), beyond the spread over runs: P times the mean over runs of the
  // least and the most v^T 1{|H| > s} v can be, given the moments each run
  // measured, for any cut s within kSlqRankCutFactor of t. They contain the
  // estimate.
  double rank_lower = 0;
  double rank_upper = 0;
  // rank_upper - rank_lower > max(1, kSlqRankTolerance * estimate): the cut
  // lies where the runs do not resolve the spectrum; rank_warning says so.
  bool rank_unreliable = false;
  std::string rank_warning;    // empty unless rank_unreliable
  int64_t num_parameters = 0;  // P
  int64_t hvps = 0;
};

// ---- Hutch++ (hutchpp.h) ----

struct HutchppOptions {
  ProbeDistribution distribution = ProbeDistribution::kRademacher;
  int max_hvps = 300;   // the budget, >= 3
  int sketch_size = 0;  // k; 0 means max_hvps / 3
  // After min_residual_probes, stop once standard_error <= target * |trace|;
  // 0 = spend the whole budget.
  double target_relative_error = 0.01;
  int min_residual_probes = 10;
  uint64_t seed = 0;
};

struct HutchppResult {
  double trace = 0;           // low_rank_trace + residual_trace
  double standard_error = 0;  // of the residual Hutchinson part, given Q
  double low_rank_trace = 0;  // tr(Q^T H Q), exact given the sketch
  double residual_trace = 0;  // Hutchinson on (I - QQ^T) H (I - QQ^T)
  int sketch_size = 0;        // columns of Q
  int residual_probes = 0;
  int64_t hvps = 0;         // 2 * sketch_size + residual_probes
  std::string stop_reason;  // as TraceResult's
  // Whether the sketch paid off, from products already computed:
  // |A|_F^2 = |A Q|_F^2 + |A (I - QQ^T)|_F^2, the second part estimated by the
  // mean of |A g|^2 over the residual probes g (exact when there are none).
  double frobenius_norm_squared = 0;
  // |A Q|_F^2 / frobenius_norm_squared: near 1 when a few directions hold the
  // operator (Hutch++ wins), near sketch_size / size when the spectrum is flat.
  double sketch_frobenius_fraction = 0;
  // sqrt(2 frobenius_norm_squared / hvps): the standard error Hutchinson with
  // Gaussian probes would have with the same products (an upper bound for
  // Rademacher probes, whose variance drops the diagonal's share).
  double hutchinson_standard_error_same_hvps = 0;
};

// ---- The trace to a standard error (adaptive_trace.h, ADR 0022) ----

struct AdaptiveTraceOptions {
  ProbeDistribution distribution = ProbeDistribution::kRademacher;
  int max_hvps = 1000;  // the budget, >= initial_sketch_size + 2
  // Stop once standard_error <= target_standard_error (absolute) or
  // standard_error <= target_relative_error * |trace|, whichever is set
  // (> 0) and met first; at least one must be set.
  double target_standard_error = 0;
  double target_relative_error = 0.01;
  int initial_sketch_size = 8;  // k0: the first sketch; it doubles from there
  int min_probes = 10;          // Hutchinson or residual probes before a stop
  uint64_t seed = 0;
};

struct AdaptiveTraceResult {
  double trace = 0;
  // Hutch++: of the residual Hutchinson part, given the sketch (the low-rank
  // part is exact given it); Hutchinson: of the mean of all probe terms.
  double standard_error = 0;
  std::string method;  // "hutch++" or "hutchinson"
  // Why: the predicted remaining products of each option at the decision.
  std::string decision;
  int sketch_size = 0;      // columns of Q; 0 for Hutchinson
  int probes = 0;           // Hutchinson terms (sketch probes included) or
                            // residual probes
  int64_t hvps = 0;         // every product, the sketch's included
  std::string stop_reason;  // "target_standard_error",
                            // "target_relative_error", "exact_zero_variance"
                            // or "max_hvps"
  // From the sketch probes: the mean of |A s|^2 (an unbiased estimate of
  // |A|_F^2) and the share |A Q|_F^2 of it the final sketch holds (where
  // Hutchinson was taken before any low-rank product, the share estimated
  // for the basis of the first sketch's first half).
  double frobenius_norm_squared = 0;
  double sketch_frobenius_fraction = 0;
};

// ---- tr(H^3) (trace_cubed.h): TraceOptions in, TraceResult out ----

// ---- Exact Hessian (exact_hessian.h) ----

struct ExactHessianOptions {
  int64_t max_parameters = 20000;  // the cap on P; larger is InvalidArgument
  int block_size = 256;            // columns assembled per device transfer
  // Copy the symmetrised matrix into ExactHessianResult.matrix; allowed only
  // when P <= max_matrix_parameters.
  bool return_matrix = false;
  int64_t max_matrix_parameters = 1000;
};

struct ExactHessianResult {
  std::vector<double> eigenvalues;  // ascending, float64 eigvalsh
  int64_t rank = 0;                 // |lambda| > rank_tolerance
  // max(10 noise_scale, max|lambda| P eps_float64): from the rounding measured
  // in the matrix, not a worst-case bound (exact_hessian.h, README).
  double rank_tolerance = 0;
  std::string rank_rule;  // the rule and its numbers
  int64_t positive = 0;   // lambda > rank_tolerance
  int64_t negative = 0;   // lambda < -rank_tolerance
  // max |lambda| / min |lambda| over the rank eigenvalues counted; NaN when
  // rank is 0.
  double condition_number = 0;
  // sum of log lambda over lambda > rank_tolerance (0 when none).
  double log_determinant_positive = 0;
  // max |H_ij - H_ji| / max |H_ij| of the assembled matrix, before
  // symmetrising.
  double asymmetry = 0;
  // Estimate of ||E||_2, E the rounding of the assembled matrix: the larger
  // of ||(H - H^T)/2||_2 before symmetrising and eps(dtype) ||H||_F.
  double noise_scale = 0;
  // The worst-case rule max|lambda| P eps(dtype) and its rank, for comparison.
  double worst_case_tolerance = 0;
  int64_t worst_case_rank = 0;
  // log10(smallest counted |lambda| / largest uncounted |lambda|): the gap
  // across the cut (rank_tolerance for an empty side; +inf over exact zeros).
  double rank_gap_decades = 0;
  // The rank at rank_tolerance / 10 and at rank_tolerance * 10.
  int64_t rank_at_tenth_tolerance = 0;
  int64_t rank_at_tenfold_tolerance = 0;
  // Those two ranks agree, or the gap spans >= 2 decades; else rank_warning
  // says why the rank is not clear-cut (empty when it is).
  bool rank_clear_cut = true;
  std::string rank_warning;
  std::vector<double> matrix;  // P x P row-major, only if return_matrix
  int64_t num_parameters = 0;
  int64_t hvps = 0;  // P
};

// ---- Power iteration with deflation (power_iteration.h) ----

struct PowerIterationOptions {
  int top_k = 1;
  int max_iterations = 1000;  // per eigenpair
  double relative_tolerance = 1e-6;
  uint64_t seed = 0;
};

struct PowerEigenpair {
  double value = 0;          // Rayleigh quotient v^T H v
  double residual_norm = 0;  // ||H v - value v||, H itself (not deflated)
  int iterations = 0;
  bool converged = false;
};

struct PowerIterationResult {
  std::vector<PowerEigenpair> pairs;  // in the order found: descending |value|
  int64_t hvps = 0;
  bool converged = false;  // every pair converged
};

}  // namespace curvd::core

#endif  // CURVD_CORE_API_SPECTRAL_MEASUREMENT_H_

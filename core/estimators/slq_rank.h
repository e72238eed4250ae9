// The cut of SLQ's rank estimate tr 1{|x| > t} and that estimate's systematic
// bounds: what the moments each Lanczos run measured allow the count to be.
// Plain float64 on the host, no torch. Thread-safe.
//
// The cut. t = max(log_threshold, sqrt(eps) * max |Ritz value|), eps the unit
// roundoff of the products' dtype. A run treats a coupling beta <=
// sqrt(eps) ||T|| as a breakdown (slq.h), and a Ritz value is only known to
// within its coupling, so nodes below sqrt(eps) ||T|| cannot be told from 0;
// the Ritz node of a null space sits at the rounding of the products, about
// eps ||H|| times a modest factor (eps sqrt(P) for a sum over P terms), which
// is below sqrt(eps) ||H|| for every P < 1 / eps. The rule scales with the
// spectrum, where an absolute cut counted a null space at 1e-5 as non-zero.
//
// The bounds. A run of m steps fixes the moments of v's spectral measure mu up
// to degree 2m (T and beta_m). By the Chebyshev-Markov-Stieltjes inequalities,
// the canonical quadrature through a point xi (m + 1 nodes, one at xi, exact
// to degree 2m: T extended by beta_m and a last diagonal entry chosen so that
// xi is an eigenvalue) bounds mu's distribution function for every measure
// with those moments: its mass below xi <= mu((-inf, xi)) and mu((-inf, xi])
// <= its mass up to xi. The mass at xi (the Christoffel function) is what the
// moments cannot place: near a Gauss node that stands for an unresolved
// cluster it is the cluster's weight; far from the spectrum, or when the run
// is invariant (beta_m ~ 0), it vanishes. rank_lower and rank_upper take the
// cut at kSlqRankCutFactor * t and t / kSlqRankCutFactor, so that they also
// say how far the count moves when the rule's constant does.
#ifndef CURVD_CORE_ESTIMATORS_SLQ_RANK_H_
#define CURVD_CORE_ESTIMATORS_SLQ_RANK_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/spectral_measurement.h"

namespace curvd::core {

struct RankCut {
  double threshold = 0;
  std::string rule;  // the rule and its numbers
};

// t = max(floor, sqrt(eps) * max over runs of max |node|), with its rule;
// eps is the unit roundoff of the products' dtype.
RankCut RankThreshold(const std::vector<SlqRun>& runs, double eps,
                      std::optional<double> floor);

// The canonical quadrature of `run` (its alphas and betas, beta_m last)
// through xi: `below` its mass at nodes < xi and `at` its mass at xi, so that
// below <= mu((-inf, xi)) <= mu((-inf, xi]) <= below + at for every measure
// mu with the run's moments up to degree 2m. InvalidArgument for a run whose
// alphas and betas differ in size or are empty.
struct CanonicalSplit {
  double below = 0;
  double at = 0;
};
absl::StatusOr<CanonicalSplit> CanonicalSplitAt(const SlqRun& run, double xi);

// The least and the most v^T 1{|H| > s} v can be given `run`'s moments, from
// the canonical quadratures through s and -s (s >= 0).
struct CountBounds {
  double lower = 0;
  double upper = 0;
};
absl::StatusOr<CountBounds> IndicatorBounds(const SlqRun& run, double s);

// Fills result->rank_lower, rank_upper, rank_unreliable and rank_warning
// from result->runs, num_parameters, log_threshold and the "1{|x|>t}"
// estimate (see SlqResult). InvalidArgument as CanonicalSplitAt, or when
// the estimate is missing.
absl::Status BoundRank(SlqResult* result);

}  // namespace curvd::core

#endif  // CURVD_CORE_ESTIMATORS_SLQ_RANK_H_

#include "core/estimators/slq_rank.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/estimators/slq.h"

namespace curvd::core {
namespace {

// Beyond this multiple of ||T||, the extension's last diagonal entry would
// cost the small eigenvalues of the extended matrix their accuracy (QL is
// accurate to eps times the largest entry): xi is then a Gauss node of T to
// rounding, and the Gauss rule is the canonical quadrature through it.
constexpr double kMaxExtension = 1e3;

// The Gauss rule split at its node nearest xi.
CanonicalSplit GaussSplitAtNearestNode(const SlqRun& run, double xi) {
  size_t nearest = 0;
  for (size_t j = 1; j < run.nodes.size(); ++j) {
    if (std::abs(run.nodes[j] - xi) < std::abs(run.nodes[nearest] - xi)) {
      nearest = j;
    }
  }
  CanonicalSplit split;
  for (size_t j = 0; j < nearest; ++j) split.below += run.weights[j];
  split.at = run.weights[nearest];
  return split;
}

}  // namespace

RankCut RankThreshold(const std::vector<SlqRun>& runs, double eps,
                      std::optional<double> floor) {
  double scale = 0;
  for (const SlqRun& run : runs) {
    for (double node : run.nodes) scale = std::max(scale, std::abs(node));
  }
  const double relative = std::sqrt(eps) * scale;
  RankCut cut;
  cut.threshold = std::max(relative, floor.value_or(0.0));
  cut.rule = absl::StrFormat(
      "t = sqrt(eps) * max |Ritz value| = %.6g * %.17g = %.17g (eps = %.6g, "
      "the unit roundoff of the products' dtype)",
      std::sqrt(eps), scale, relative, eps);
  if (!floor.has_value()) {
    absl::StrAppend(&cut.rule, "; no log_threshold floor");
  } else if (*floor > relative) {
    absl::StrAppend(&cut.rule,
                    absl::StrFormat("; raised to log_threshold = %.17g, "
                                    "as requested",
                                    *floor));
  } else {
    absl::StrAppend(&cut.rule,
                    absl::StrFormat("; above log_threshold = %.17g, the "
                                    "floor requested",
                                    *floor));
  }
  return cut;
}

absl::StatusOr<CanonicalSplit> CanonicalSplitAt(const SlqRun& run,
                                                double xi) {
  const size_t m = run.alphas.size();
  if (m == 0 || run.betas.size() != m || run.nodes.size() != m ||
      run.weights.size() != m) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a canonical quadrature needs a run with as many alphas, betas, nodes "
        "and weights, got ",
        m, ", ", run.betas.size(), ", ", run.nodes.size(), ", ",
        run.weights.size()));
  }
  const double beta = run.betas.back();
  if (beta == 0) {
    // The Krylov space is invariant: the measure is the Gauss rule.
    CanonicalSplit split;
    for (size_t j = 0; j < m; ++j) {
      if (run.nodes[j] < xi) split.below += run.weights[j];
      if (run.nodes[j] == xi) split.at += run.weights[j];
    }
    return split;
  }
  double scale = std::abs(xi);
  for (size_t k = 0; k < m; ++k) {
    scale = std::max(scale, std::abs(run.alphas[k]) + run.betas[k]);
  }
  // The last pivot of T - xi = L D L^T is 1 / [(T - xi)^-1]_mm; a zero pivot
  // on the way is replaced by a tiny one, as LAPACK's Sturm counts do.
  const double tiny = std::numeric_limits<double>::epsilon() * scale;
  double pivot = 0;
  for (size_t k = 0; k < m; ++k) {
    pivot = run.alphas[k] - xi -
            (k == 0 ? 0.0 : run.betas[k - 1] * run.betas[k - 1] / pivot);
    if (pivot == 0) pivot = tiny;
  }
  const double extension = beta * beta / pivot;
  if (!(std::abs(extension) <= kMaxExtension * scale)) {
    return GaussSplitAtNearestNode(run, xi);
  }
  // xi is an eigenvalue of [[T, beta e_m], [beta e_m^T, xi + extension]], and
  // by interlacing with T's eigenvalues the one after those below xi.
  std::vector<double> alphas = run.alphas;
  alphas.push_back(xi + extension);
  CURVD_ASSIGN_OR_RETURN(const SlqRun canonical,
                         GaussQuadrature(alphas, run.betas));
  const size_t at = static_cast<size_t>(
      std::count_if(run.nodes.begin(), run.nodes.end(),
                    [xi](double node) { return node < xi; }));
  CanonicalSplit split;
  for (size_t j = 0; j < at; ++j) split.below += canonical.weights[j];
  split.at = canonical.weights[at];
  return split;
}

absl::StatusOr<CountBounds> IndicatorBounds(const SlqRun& run, double s) {
  CURVD_ASSIGN_OR_RETURN(const CanonicalSplit upper_end,
                         CanonicalSplitAt(run, s));
  CURVD_ASSIGN_OR_RETURN(const CanonicalSplit lower_end,
                         CanonicalSplitAt(run, -s));
  // mu([-s, s]) = mu((-inf, s]) - mu((-inf, -s)).
  const double inside_least =
      upper_end.below - lower_end.below - lower_end.at;
  const double inside_most = upper_end.below + upper_end.at - lower_end.below;
  CountBounds bounds;
  bounds.lower = std::clamp(1 - inside_most, 0.0, 1.0);
  bounds.upper = std::clamp(1 - inside_least, 0.0, 1.0);
  return bounds;
}

absl::Status BoundRank(SlqResult* result) {
  const SpectralEstimate* rank = nullptr;
  for (const SpectralEstimate& e : result->estimates) {
    if (e.function == "1{|x|>t}") rank = &e;
  }
  if (rank == nullptr || result->runs.empty()) {
    return absl::InvalidArgumentError(
        "bounding the rank needs SLQ runs and their 1{|x|>t} estimate");
  }
  const double t = result->log_threshold;
  double lower = 0, upper = 0;
  for (const SlqRun& run : result->runs) {
    CURVD_ASSIGN_OR_RETURN(const CountBounds high,
                           IndicatorBounds(run, t * kSlqRankCutFactor));
    CURVD_ASSIGN_OR_RETURN(const CountBounds low,
                           IndicatorBounds(run, t / kSlqRankCutFactor));
    lower += high.lower;
    upper += low.upper;
  }
  const double scale = static_cast<double>(result->num_parameters) /
                       static_cast<double>(result->runs.size());
  // The bounds hold for the runs' true measures; the Gauss rule's own count,
  // exact only to degree 2m - 1, may sit a rounding outside them.
  result->rank_lower = std::min(scale * lower, rank->trace);
  result->rank_upper = std::max(scale * upper, rank->trace);
  const double width = result->rank_upper - result->rank_lower;
  result->rank_unreliable =
      width > std::max(1.0, kSlqRankTolerance * rank->trace);
  result->rank_warning =
      result->rank_unreliable
          ? absl::StrFormat(
                "the rank estimate %.6g is not resolved: for a cut within a "
                "factor %g of t = %.6g, the moments the runs measured allow "
                "anything from %.6g to %.6g eigenvalues above it (nodes near "
                "the cut stand for clusters the %d-step runs do not resolve; "
                "a null space is resolved once the steps exceed the rank); "
                "log|x| shares the cut",
                rank->trace, kSlqRankCutFactor, t, result->rank_lower,
                result->rank_upper, result->runs.front().steps)
          : "";
  return absl::OkStatus();
}

}  // namespace curvd::core

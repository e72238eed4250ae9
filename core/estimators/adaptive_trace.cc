#include "core/estimators/adaptive_trace.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/estimators/term_and_norm.h"
#include "core/estimators/trace_estimate.h"
#include "core/linalg/orthonormal_rows.h"

namespace curvd::core {
namespace {

absl::Status ValidateAdaptiveTraceOptions(const AdaptiveTraceOptions& a) {
  if (a.initial_sketch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("adaptive trace initial_sketch_size must be >= 1, got ",
                     a.initial_sketch_size));
  }
  if (a.min_probes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "adaptive trace min_probes must be >= 1, got ", a.min_probes));
  }
  if (static_cast<int64_t>(a.max_hvps) <
      static_cast<int64_t>(a.initial_sketch_size) + 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "adaptive trace max_hvps must be >= initial_sketch_size + 2 = ",
        static_cast<int64_t>(a.initial_sketch_size) + 2, ", got ", a.max_hvps));
  }
  if (!(a.target_standard_error >= 0) || !(a.target_relative_error >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "adaptive trace targets must be >= 0, got target_standard_error ",
        a.target_standard_error, " and target_relative_error ",
        a.target_relative_error));
  }
  if (a.target_standard_error == 0 && a.target_relative_error == 0) {
    return absl::InvalidArgumentError(
        "adaptive trace needs target_standard_error or target_relative_error "
        "> 0: it runs to a standard error");
  }
  return absl::OkStatus();
}

// The standard error the targets accept at a trace of `trace`.
double Allowance(const AdaptiveTraceOptions& a, double trace) {
  return std::max(a.target_standard_error,
                  a.target_relative_error * std::abs(trace));
}

// The stop reason for the running estimate `terms` of `trace`, or "" to go on.
std::string StopReason(const AdaptiveTraceOptions& a, const TraceResult& terms,
                       double trace, bool zero_variance) {
  if (terms.probes < a.min_probes) return "";
  if (zero_variance) return "exact_zero_variance";
  if (a.target_standard_error > 0 &&
      terms.standard_error <= a.target_standard_error) {
    return "target_standard_error";
  }
  if (a.target_relative_error > 0 &&
      terms.standard_error <= a.target_relative_error * std::abs(trace)) {
    return "target_relative_error";
  }
  return "";
}

// A running mean and standard error with no stopping rule of its own.
RunningTraceEstimate Accumulator() {
  TraceOptions never;
  never.target_relative_error = 0;
  return RunningTraceEstimate(never);
}

// (the share of |A|_F^2 = `frobenius` that a basis of the first half of
// `block`'s rows holds, an optimistic guess at what a basis of all of them
// would hold), for `block` the products A s of sketch probes s, float64, at
// least two rows, judged before any low-rank product. The second half's
// products are independent of the first half's basis Q_h, so their mean
// |Q_h^T A s|^2 estimates |A Q_h|_F^2 without bias (the share, a ratio to the
// estimated |A|_F^2, is not unbiased). The best basis of r times the columns
// holds at most r times what the best of fewer holds, and the guess allows
// 1.5 more for the spread of a random sketch: a heuristic margin, not a
// bound (a random half may miss a dominant direction the whole would catch).
std::pair<double, double> GuessWhatASketchHolds(const torch::Tensor& block,
                                                double frobenius) {
  const int64_t half = block.size(0) / 2;
  const torch::Tensor first = OrthonormalRows(block.slice(0, 0, half));
  const torch::Tensor rest = block.slice(0, half);
  const double held =
      rest.mm(first.t()).square().sum().item<double>() / rest.size(0);
  const double share =
      frobenius > 0 ? std::clamp(held / frobenius, 0.0, 1.0) : 1.0;
  const double columns_ratio = static_cast<double>(block.size(0)) / half;
  return {share, std::min(1.5 * columns_ratio * share, 1.0)};
}

}  // namespace

absl::StatusOr<AdaptiveTraceResult> AdaptiveTrace(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const AdaptiveTraceOptions& adaptive, const Progress& progress) {
  if (size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "adaptive trace needs a non-empty operator, got size ", size));
  }
  CURVD_RETURN_IF_ERROR(ValidateAdaptiveTraceOptions(adaptive));
  at::Generator generator = SeededGenerator(adaptive.seed);
  AdaptiveTraceResult result;

  auto product = [&](const torch::Tensor& v, const char* stage,
                     int64_t index) -> absl::StatusOr<torch::Tensor> {
    if (progress.cancelled && progress.cancelled()) {
      return absl::CancelledError(
          absl::StrCat("cancelled at adaptive trace ", stage, " ", index));
    }
    if (progress.report) {
      progress.report(
          static_cast<double>(result.hvps) / adaptive.max_hvps,
          absl::StrFormat("adaptive trace %s %d, %d/%d products", stage,
                          index + 1, result.hvps, adaptive.max_hvps));
    }
    CURVD_ASSIGN_OR_RETURN(torch::Tensor av, op(v));
    ++result.hvps;
    return av;
  };
  auto not_finite = [](const char* what, int64_t index) {
    return absl::InvalidArgumentError(
        absl::StrCat("adaptive trace ", what, " ", index, " is not finite"));
  };

  // Every sketch probe s is also a Hutchinson probe: its term s^T A s feeds
  // `hutchinson`, and |A s|^2 the estimate of |A|_F^2.
  RunningTraceEstimate hutchinson = Accumulator();
  bool hutchinson_terms_equal = true;
  double first_hutchinson_term = 0;
  double sketch_norms = 0;  // sum of |A s|^2
  // sum of s * A s (elementwise) in float64: its mean estimates diag(A).
  torch::Tensor diagonal_sum =
      torch::zeros({size}, options.dtype(torch::kFloat64));
  double low_rank_trace = 0;    // tr(Q^T A Q)
  double sketch_frobenius = 0;  // |A Q|_F^2
  torch::Tensor basis64;        // Q^T in float64, k x size
  int64_t k = 0;

  // Draws `add` sketch probes s and returns their products A s, the rows of
  // a block; each probe is a Hutchinson probe too.
  auto sketch = [&](int64_t add) -> absl::StatusOr<torch::Tensor> {
    torch::Tensor block = torch::empty({add, size}, options);
    for (int64_t i = 0; i < add; ++i) {
      const torch::Tensor s =
          RandomProbe(size, adaptive.distribution, generator, options);
      CURVD_ASSIGN_OR_RETURN(torch::Tensor as, product(s, "sketch", k + i));
      const auto [term, norm_squared] = TermAndNormSquared(s, as);
      if (!std::isfinite(term) || !std::isfinite(norm_squared)) {
        return not_finite("sketch product", k + i);
      }
      if (hutchinson.result().probes == 0) first_hutchinson_term = term;
      hutchinson_terms_equal &= term == first_hutchinson_term;
      hutchinson.Add(term);
      sketch_norms += norm_squared;
      diagonal_sum += (s * as).to(torch::kFloat64);
      block[i].copy_(as);
    }
    return block;
  };
  // Adds the rows of `block` (from sketch) to Q, orthonormalised against it
  // in float64, with their exact q^T A q and |A q|^2.
  auto extend = [&](const torch::Tensor& block) -> absl::Status {
    const int64_t add = block.size(0);
    const torch::Tensor y = OrthonormalRows(block.to(torch::kFloat64), basis64);
    for (int64_t i = 0; i < add; ++i) {
      const torch::Tensor q = y[i].to(options);
      CURVD_ASSIGN_OR_RETURN(torch::Tensor aq,
                             product(q, "low-rank trace", k + i));
      const auto [term, norm_squared] = TermAndNormSquared(q, aq);
      if (!std::isfinite(term)) return not_finite("q^T A q of column", k + i);
      low_rank_trace += term;
      sketch_frobenius += norm_squared;
    }
    basis64 = basis64.defined() ? torch::cat({basis64, y}) : y.contiguous();
    k += add;
    return absl::OkStatus();
  };
  // The mean of |A s|^2 over the sketch probes: |A|_F^2.
  auto frobenius = [&] { return sketch_norms / hutchinson.result().probes; };
  // Hutchinson's remaining cost times the target variance `variance_unit`:
  // the variance per probe it predicts, less the terms it already has. That
  // is 2 (|A|_F^2 - |diag A|^2) for Rademacher probes (the diagonal's share
  // is large for a shifted operator) and 2 |A|_F^2 for Gaussian ones.
  // |diag A|^2 comes from the mean D of s * A s over the m sketch probes:
  // E |D|^2 = |diag A|^2 + (|A|_F^2 - |diag A|^2) / m. These are far less
  // noisy than the sample variance of a few terms.
  auto hutchinson_remaining = [&](double variance_unit) {
    const double m = hutchinson.result().probes;
    const double f = frobenius();
    double diagonal_squared = 0;
    if (m > 1) {
      const double mean_squared =
          (diagonal_sum / m).square().sum().item<double>();
      diagonal_squared = std::clamp((m * mean_squared - f) / (m - 1), 0.0, f);
    }
    const double variance =
        adaptive.distribution == ProbeDistribution::kRademacher
            ? 2 * (f - diagonal_squared)
            : 2 * f;
    return std::max(variance - m * variance_unit, 0.0);
  };
  auto products = [](double score, double variance_unit) {
    return score / variance_unit;
  };

  // From a first sketch in Q on: grows it while doubling is predicted to be
  // cheapest; true for Hutch++ with the sketch as it then is, false for
  // Hutchinson.
  auto sketch_or_not = [&]() -> absl::StatusOr<bool> {
    // The residual |A (I - QQ^T)|_F^2 before the last growth: all of
    // |A|_F^2 before the first.
    double previous_residual = frobenius();
    while (true) {
      const double residual = std::max(frobenius() - sketch_frobenius, 0.0);
      const double ratio = previous_residual > 0
                               ? std::min(residual / previous_residual, 1.0)
                               : 0.0;
      const double allowance = Allowance(adaptive, hutchinson.result().trace);
      const double variance_unit = allowance * allowance;  // one product's
      // Remaining cost of each option times the target variance; the
      // residual's variance per probe is the bound 2 |A (I - QQ^T)|_F^2, as
      // the projected probes are not Rademacher.
      const double hutchinson_score = hutchinson_remaining(variance_unit);
      const double hutchpp_score = 2 * residual;
      const int64_t add = std::min(k, size - k);
      const bool can_grow =
          add > 0 && result.hvps + 2 * add + adaptive.min_probes <=
                         static_cast<int64_t>(adaptive.max_hvps);
      const double grow_score =
          can_grow ? 2 * add * variance_unit + ratio * hutchpp_score
                   : std::numeric_limits<double>::infinity();
      result.decision = absl::StrFormat(
          "predicted remaining products: hutchinson %.0f, hutch++ with k = %d "
          "%.0f, doubling to k = %d %.0f",
          products(hutchinson_score, variance_unit), k,
          products(hutchpp_score, variance_unit), k + add,
          products(grow_score, variance_unit));
      result.frobenius_norm_squared = frobenius();
      result.sketch_frobenius_fraction =
          frobenius() > 0 ? std::min(sketch_frobenius / frobenius(), 1.0) : 1.0;
      if (hutchinson_score <= std::min(hutchpp_score, grow_score)) return false;
      if (grow_score >= hutchpp_score) return true;
      previous_residual = residual;
      CURVD_ASSIGN_OR_RETURN(const torch::Tensor block, sketch(add));
      CURVD_RETURN_IF_ERROR(extend(block));
    }
  };

  const int64_t first_size =
      std::min<int64_t>(adaptive.initial_sketch_size, size);
  bool choose_hutchpp = false;
  {
    CURVD_ASSIGN_OR_RETURN(torch::Tensor first_block, sketch(first_size));
    first_block = first_block.to(torch::kFloat64);
    // Before the first sketch's low-rank products: where Hutchinson wins even
    // against an optimistic guess at what that sketch holds, or the budget
    // leaves no room for them and min_probes residual probes, Hutchinson is
    // taken at once, and the sketch probes, Hutchinson probes already, cost
    // nothing extra. Not where the sketch spans the whole space: Hutch++ is
    // then exact.
    bool hutchinson_at_once = false;
    if (first_size >= 2 && first_size < size) {
      const auto [half_share, guess] =
          GuessWhatASketchHolds(first_block, frobenius());
      const double allowance = Allowance(adaptive, hutchinson.result().trace);
      const double variance_unit = allowance * allowance;
      const double hutchinson_score = hutchinson_remaining(variance_unit);
      // The residual's variance per probe is the bound 2 |A (I - QQ^T)|_F^2.
      const double hutchpp_guess =
          first_size * variance_unit + 2 * (1 - guess) * frobenius();
      const bool no_room = result.hvps + first_size + adaptive.min_probes >
                           static_cast<int64_t>(adaptive.max_hvps);
      hutchinson_at_once = no_room || hutchinson_score <= hutchpp_guess;
      result.decision = absl::StrFormat(
          "after %d sketch products (a basis of the first %d holding %.1f%% of "
          "|A|_F^2, all %d guessed at %.1f%%): predicted remaining products: "
          "hutchinson %.0f, hutch++ with k = %d %.0f%s",
          first_size, first_size / 2, 100 * half_share, first_size,
          100 * guess, products(hutchinson_score, variance_unit), first_size,
          products(hutchpp_guess, variance_unit),
          no_room ? "; no room in max_hvps for the sketch's low-rank products"
                  : "");
      result.frobenius_norm_squared = frobenius();
      result.sketch_frobenius_fraction = half_share;
    }
    if (!hutchinson_at_once) {
      CURVD_RETURN_IF_ERROR(extend(first_block));
      CURVD_ASSIGN_OR_RETURN(choose_hutchpp, sketch_or_not());
    }
  }

  result.stop_reason = "max_hvps";
  if (!choose_hutchpp) {
    result.method = "hutchinson";
    while (true) {
      const TraceResult& terms = hutchinson.result();
      result.trace = terms.trace;
      result.standard_error = terms.standard_error;
      result.probes = terms.probes;
      const std::string reason =
          StopReason(adaptive, terms, terms.trace,
                     terms.probes > 1 && hutchinson_terms_equal);
      if (!reason.empty()) {
        result.stop_reason = reason;
        break;
      }
      if (result.hvps >= adaptive.max_hvps) break;
      const torch::Tensor z =
          RandomProbe(size, adaptive.distribution, generator, options);
      CURVD_ASSIGN_OR_RETURN(torch::Tensor az,
                             product(z, "Hutchinson probe", terms.probes));
      const double term =
          z.dot(az).to(torch::kCPU, torch::kFloat64).item<double>();
      if (!std::isfinite(term)) return not_finite("probe", terms.probes);
      hutchinson_terms_equal &= term == first_hutchinson_term;
      hutchinson.Add(term);
    }
    return result;
  }

  result.method = "hutch++";
  result.sketch_size = static_cast<int>(k);
  const torch::Tensor basis = basis64.to(options);
  RunningTraceEstimate residual = Accumulator();
  bool residual_terms_equal = true;
  double first_residual_term = 0;
  while (true) {
    const TraceResult& terms = residual.result();
    result.trace = low_rank_trace + terms.trace;
    result.standard_error = terms.standard_error;
    result.probes = terms.probes;
    const std::string reason =
        StopReason(adaptive, terms, result.trace,
                   terms.probes > 1 && residual_terms_equal);
    if (!reason.empty()) {
      result.stop_reason = reason;
      break;
    }
    if (result.hvps >= adaptive.max_hvps) break;
    torch::Tensor g =
        RandomProbe(size, adaptive.distribution, generator, options);
    g = g - basis.t().mv(basis.mv(g));
    CURVD_ASSIGN_OR_RETURN(torch::Tensor ag,
                           product(g, "residual probe", terms.probes));
    const double term =
        g.dot(ag).to(torch::kCPU, torch::kFloat64).item<double>();
    if (!std::isfinite(term)) return not_finite("residual probe", terms.probes);
    if (terms.probes == 0) first_residual_term = term;
    residual_terms_equal &= term == first_residual_term;
    residual.Add(term);
  }
  return result;
}

}  // namespace curvd::core

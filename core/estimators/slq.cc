#include "core/estimators/slq.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/api/option_limits.h"
#include "core/estimators/slq_rank.h"
#include "core/linalg/lanczos_kernel.h"
#include "core/linalg/tridiagonal_eigen.h"

namespace curvd::core {
namespace {

// A run stops at beta <= sqrt(eps) ||T||, eps of the working dtype. Going on
// could only add nodes whose effect on any moment v^T H^k v is of relative
// size (beta / ||T||)^2 <= eps, rounding: leaving the Krylov space and coming
// back takes the small coupling twice. (Lanczos for extreme eigenvalues uses a
// tighter test; there a small beta still moves Ritz values.) It also stops at
// eigenvalues of multiplicity > 1 that rounding in the operator has split by
// far more than eps ||T||.

// The automatic grid reaches this many sigmas beyond the extreme nodes: the
// Gaussian mass left outside is below 1e-9.
constexpr double kGridPaddingSigmas = 6;
constexpr double kSqrtTwoPi = 2.5066282746310002;

absl::Status ValidateDensityOptions(const SlqOptions& slq) {
  if (slq.grid_points < limits::kMinGridPoints ||
      slq.grid_points > limits::kMaxGridPoints) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid_points must be in [", limits::kMinGridPoints, ", ",
                     limits::kMaxGridPoints, "], got ", slq.grid_points));
  }
  if (!(slq.sigma >= 0) || !std::isfinite(slq.sigma)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sigma must be finite and >= 0, got ", slq.sigma));
  }
  if (slq.sigma == 0 &&
      (!(slq.sigma_fraction > 0) || !std::isfinite(slq.sigma_fraction))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sigma_fraction must be finite and > 0, got ", slq.sigma_fraction));
  }
  const bool automatic_grid = slq.grid_min == 0 && slq.grid_max == 0;
  if (!automatic_grid &&
      !(slq.grid_min < slq.grid_max && std::isfinite(slq.grid_min) &&
        std::isfinite(slq.grid_max))) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid_min must be below grid_max, got [", slq.grid_min,
                     ", ", slq.grid_max, "]"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSlqOptions(const SlqOptions& slq) {
  if (slq.runs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("SLQ runs must be >= 1, got ", slq.runs));
  }
  if (slq.steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("SLQ steps must be >= 1, got ", slq.steps));
  }
  if (slq.log_threshold.has_value() &&
      (!(*slq.log_threshold > 0) || !std::isfinite(*slq.log_threshold))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log_threshold must be finite and > 0 when set, got ",
        *slq.log_threshold));
  }
  return ValidateDensityOptions(slq);
}

double Square(double x) { return x * x; }

}  // namespace

absl::StatusOr<SlqRun> GaussQuadrature(const std::vector<double>& alphas,
                                       const std::vector<double>& betas) {
  const std::vector<double> reversed_alphas(alphas.rbegin(), alphas.rend());
  const std::vector<double> reversed_betas(betas.rbegin(), betas.rend());
  CURVD_ASSIGN_OR_RETURN(TridiagonalEigen eig,
                         SolveTridiagonal(reversed_alphas, reversed_betas));
  SlqRun run;
  run.nodes = std::move(eig.values);
  run.weights.reserve(eig.last_components.size());
  for (double c : eig.last_components) run.weights.push_back(c * c);
  run.steps = static_cast<int>(alphas.size());
  return run;
}

absl::StatusOr<SlqDensity> BroadenedDensity(const std::vector<SlqRun>& runs,
                                            const SlqOptions& slq) {
  CURVD_RETURN_IF_ERROR(ValidateDensityOptions(slq));
  if (runs.empty()) {
    return absl::InvalidArgumentError("a density needs at least one SLQ run");
  }
  double lowest = std::numeric_limits<double>::infinity();
  double highest = -std::numeric_limits<double>::infinity();
  for (const SlqRun& run : runs) {
    if (run.nodes.empty() || run.nodes.size() != run.weights.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("an SLQ run with ", run.nodes.size(), " nodes and ",
                       run.weights.size(), " weights"));
    }
    for (double node : run.nodes) {
      if (!std::isfinite(node)) {
        return absl::InvalidArgumentError("an SLQ node is not finite");
      }
      lowest = std::min(lowest, node);
      highest = std::max(highest, node);
    }
  }

  SlqDensity density;
  if (slq.sigma > 0) {
    density.sigma = slq.sigma;
    density.sigma_rule =
        absl::StrFormat("sigma = %.17g, as requested", slq.sigma);
  } else {
    // The spread of the nodes sets the scale; a single point falls back to its
    // magnitude, and a point at 0 to 1.
    const double spread = highest - lowest;
    const double magnitude = std::max(std::abs(lowest), std::abs(highest));
    if (spread > 0) {
      density.sigma = slq.sigma_fraction * spread;
      density.sigma_rule = absl::StrFormat(
          "sigma = %.17g * (max node - min node) = %.17g * %.17g = %.17g",
          slq.sigma_fraction, slq.sigma_fraction, spread, density.sigma);
    } else if (magnitude > 0) {
      density.sigma = slq.sigma_fraction * magnitude;
      density.sigma_rule = absl::StrFormat(
          "sigma = %.17g * |node| = %.17g * %.17g = %.17g (all nodes equal)",
          slq.sigma_fraction, slq.sigma_fraction, magnitude, density.sigma);
    } else {
      density.sigma = slq.sigma_fraction;
      density.sigma_rule =
          absl::StrFormat("sigma = %.17g * 1 = %.17g (all nodes 0)",
                          slq.sigma_fraction, density.sigma);
    }
  }
  const double sigma = density.sigma;
  double grid_min = slq.grid_min;
  double grid_max = slq.grid_max;
  if (grid_min == 0 && grid_max == 0) {
    grid_min = lowest - kGridPaddingSigmas * sigma;
    grid_max = highest + kGridPaddingSigmas * sigma;
  }

  const int n = slq.grid_points;
  density.grid.resize(n);
  density.density.assign(n, 0.0);
  for (int i = 0; i < n; ++i) {
    density.grid[i] = grid_min + (grid_max - grid_min) * i / (n - 1);
  }
  const double normaliser =
      1.0 / (sigma * kSqrtTwoPi * static_cast<double>(runs.size()));
  for (const SlqRun& run : runs) {
    for (size_t j = 0; j < run.nodes.size(); ++j) {
      const double node = run.nodes[j];
      const double weight = run.weights[j] * normaliser;
      for (int i = 0; i < n; ++i) {
        const double z = (density.grid[i] - node) / sigma;
        // exp underflows to 0 far from the node; skip the call there.
        if (std::abs(z) < 40)
          density.density[i] += weight * std::exp(-0.5 * z * z);
      }
    }
  }
  return density;
}

std::vector<SpectralEstimate> QuadratureEstimates(
    const std::vector<SlqRun>& runs, int64_t num_parameters,
    double log_threshold) {
  struct Function {
    const char* name;
    std::function<double(double)> f;
  };
  const std::vector<Function> functions = {
      {"x", [](double x) { return x; }},
      {"x^2", [](double x) { return x * x; }},
      {"x^3", [](double x) { return x * x * x; }},
      {"log|x|",
       [log_threshold](double x) {
         return std::abs(x) > log_threshold ? std::log(std::abs(x)) : 0.0;
       }},
      {"1{|x|>t}",
       [log_threshold](double x) {
         return std::abs(x) > log_threshold ? 1.0 : 0.0;
       }},
  };
  std::vector<SpectralEstimate> estimates;
  if (runs.empty()) return estimates;
  const double p = static_cast<double>(num_parameters);
  const double count = static_cast<double>(runs.size());
  for (const Function& function : functions) {
    std::vector<double> per_run;
    per_run.reserve(runs.size());
    for (const SlqRun& run : runs) {
      double sum = 0;
      for (size_t j = 0; j < run.nodes.size(); ++j) {
        sum += run.weights[j] * function.f(run.nodes[j]);
      }
      per_run.push_back(sum);
    }
    double mean = 0;
    for (double x : per_run) mean += x / count;
    double squared_deviations = 0;
    for (double x : per_run) squared_deviations += Square(x - mean);
    SpectralEstimate estimate;
    estimate.function = function.name;
    estimate.mean = mean;
    estimate.trace = p * mean;
    estimate.standard_error =
        runs.size() > 1
            ? p * std::sqrt(squared_deviations / (count - 1) / count)
            : 0.0;
    estimates.push_back(std::move(estimate));
  }
  return estimates;
}

absl::StatusOr<SlqResult> StochasticLanczosQuadrature(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const SlqOptions& slq, const Progress& progress) {
  if (size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("SLQ needs a non-empty operator, got size ", size));
  }
  CURVD_RETURN_IF_ERROR(ValidateSlqOptions(slq));
  const int64_t steps = std::min<int64_t>(slq.steps, size);
  const double eps = UnitRoundoff(options);
  const double planned = static_cast<double>(slq.runs) * steps;
  at::Generator generator = SeededGenerator(slq.seed);

  SlqResult result;
  result.num_parameters = size;
  // Every run fills its basis (unless it breaks down): one allocation for all.
  LanczosKernel kernel(steps, size, options, /*initial_rows=*/steps,
                       "SLQ Lanczos");
  for (int r = 0; r < slq.runs; ++r) {
    LanczosHooks hooks;
    hooks.before_step = [&](int64_t step) -> absl::Status {
      if (progress.cancelled && progress.cancelled()) {
        return absl::CancelledError(
            absl::StrCat("cancelled at SLQ run ", r, " step ", step));
      }
      if (progress.report) {
        progress.report(static_cast<double>(result.hvps + step) / planned,
                        absl::StrFormat("SLQ run %d/%d, Lanczos step %d/%d",
                                        r + 1, slq.runs, step + 1, steps));
      }
      return absl::OkStatus();
    };
    bool invariant = false;
    double t_norm = 0;  // max_i |alpha_i| + beta_{i-1}, a scale for ||T||
    double next_beta = 0;
    hooks.after_step =
        [&](const LanczosStep& step) -> absl::StatusOr<LanczosNext> {
      next_beta = step.beta;
      t_norm = std::max(t_norm,
                        std::abs(step.alphas->back()) +
                            (step.betas->empty() ? 0.0 : step.betas->back()));
      const int64_t m = step.index + 1;
      // The basis spans the whole space, or the Krylov space is invariant up
      // to rounding (the last step's beta is not needed).
      invariant =
          m == size || (m < steps && step.beta <= std::sqrt(eps) * t_norm);
      return invariant ? LanczosNext::kStop : LanczosNext::kExtend;
    };
    CURVD_ASSIGN_OR_RETURN(
        const LanczosTridiagonal t,
        kernel.Run(op, RandomProbe(size, slq.distribution, generator, options),
                   hooks));
    CURVD_ASSIGN_OR_RETURN(SlqRun run, GaussQuadrature(t.alphas, t.betas));
    run.invariant = invariant;
    run.alphas = t.alphas;
    run.betas = t.betas;
    run.betas.push_back(next_beta);
    result.hvps += run.steps;
    result.runs.push_back(std::move(run));
  }
  CURVD_ASSIGN_OR_RETURN(result.density, BroadenedDensity(result.runs, slq));
  RankCut cut = RankThreshold(result.runs, eps, slq.log_threshold);
  result.log_threshold = cut.threshold;
  result.threshold_rule = std::move(cut.rule);
  result.estimates = QuadratureEstimates(result.runs, size, cut.threshold);
  CURVD_RETURN_IF_ERROR(BoundRank(&result));
  return result;
}

}  // namespace curvd::core

#include "core/estimators/power_iteration.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/linalg/lanczos_kernel.h"

namespace curvd::core {

absl::StatusOr<PowerIterationResult> PowerIteration(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const PowerIterationOptions& power, const Progress& progress,
    std::vector<torch::Tensor>* eigenvectors) {
  if (size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "power iteration needs a non-empty operator, got size ", size));
  }
  if (power.top_k < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("power iteration top_k must be >= 1, got ", power.top_k));
  }
  if (power.max_iterations < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("power iteration max_iterations must be >= 1, got ",
                     power.max_iterations));
  }
  if (!(power.relative_tolerance > 0 && power.relative_tolerance < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("power iteration relative_tolerance must be in (0, 1), "
                     "got ",
                     power.relative_tolerance));
  }
  const int64_t k = std::min<int64_t>(power.top_k, size);
  const double planned = static_cast<double>(k) * power.max_iterations;
  at::Generator generator = SeededGenerator(power.seed);
  // Rows: the unit eigenvectors found so far.
  torch::Tensor found = torch::empty({k, size}, options);
  // v minus its projection on the pairs found, twice for orthogonality in
  // floating point.
  auto deflate = [&found](torch::Tensor v, int64_t pairs) {
    if (pairs == 0) return v;
    const torch::Tensor q = found.narrow(0, 0, pairs);
    for (int pass = 0; pass < 2; ++pass) v = v - q.t().mv(q.mv(v));
    return v;
  };

  // As in Lanczos (and ARPACK), eps^(2/3) of the operator's scale is the
  // floor of the tolerance, so that an eigenvalue at 0 can converge.
  const double floor_factor = std::pow(UnitRoundoff(options), 2.0 / 3.0);
  double largest = 0;  // the largest |value| seen, the operator's scale
  PowerIterationResult result;
  for (int64_t pair = 0; pair < k; ++pair) {
    torch::Tensor v = deflate(
        RandomProbe(size, ProbeDistribution::kGaussian, generator, options),
        pair);
    double norm = v.norm().item<double>();
    if (!(norm > 0)) {
      return absl::InternalError("power iteration start vector is zero");
    }
    v = v / norm;
    PowerEigenpair eigenpair;
    for (int iteration = 1; iteration <= power.max_iterations; ++iteration) {
      if (progress.cancelled && progress.cancelled()) {
        return absl::CancelledError(
            absl::StrCat("cancelled at power iteration pair ", pair + 1,
                         " iteration ", iteration));
      }
      if (progress.report) {
        progress.report(
            static_cast<double>(result.hvps) / planned,
            absl::StrFormat("power iteration pair %d/%d, iteration %d",
                            pair + 1, k, iteration));
      }
      CURVD_ASSIGN_OR_RETURN(torch::Tensor w, op(v));
      ++result.hvps;
      const double value = v.dot(w).item<double>();
      const torch::Tensor deflated = deflate(w, pair);
      const double deflated_residual =
          (deflated - value * v).norm().item<double>();
      const double residual = (w - value * v).norm().item<double>();
      norm = deflated.norm().item<double>();
      if (!std::isfinite(value) || !std::isfinite(residual) ||
          !std::isfinite(norm)) {
        return absl::InvalidArgumentError(
            absl::StrCat("operator product at power iteration pair ", pair + 1,
                         " iteration ", iteration, " is not finite"));
      }
      eigenpair.value = value;
      eigenpair.residual_norm = residual;
      eigenpair.iterations = iteration;
      largest = std::max(largest, std::abs(value));
      eigenpair.converged =
          deflated_residual <=
              power.relative_tolerance *
                  std::max(std::abs(value), floor_factor * largest) ||
          norm == 0;
      // v stays the vector whose value and residual are reported.
      if (eigenpair.converged || iteration == power.max_iterations) break;
      v = deflated / norm;
    }
    found[pair].copy_(v);
    result.pairs.push_back(eigenpair);
  }
  result.converged =
      std::all_of(result.pairs.begin(), result.pairs.end(),
                  [](const PowerEigenpair& p) { return p.converged; });
  if (eigenvectors != nullptr) {
    eigenvectors->clear();
    for (int64_t pair = 0; pair < k; ++pair) {
      eigenvectors->push_back(found[pair].clone());
    }
  }
  return result;
}

}  // namespace curvd::core

#include "core/linalg/lanczos.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/linalg/lanczos_kernel.h"
#include "core/linalg/tridiagonal_eigen.h"

namespace curvd::core {
namespace {

// beta at or below this many rounding units of ||T|| is a breakdown: what is
// left of A q after removing the basis is rounding noise.
constexpr double kBreakdownUlps = 100;
// Rows the Lanczos basis starts with; it doubles when full (preallocating
// max_iterations + 1 rows of a large model could take more memory than the run
// needs).
constexpr int64_t kInitialBasisRows = 16;

// The unit Ritz vectors Q^T s_i of the `count` largest Ritz values, largest
// first, from the eigenvectors s_i of T_m: the tridiagonal solver keeps only
// their last components, so T_m (m x m, small) is solved again densely.
std::vector<torch::Tensor> TopRitzVectors(const torch::Tensor& basis,
                                          const LanczosTridiagonal& t,
                                          int64_t count) {
  const int64_t m = static_cast<int64_t>(t.alphas.size());
  std::vector<torch::Tensor> vectors;
  if (count == 0) return vectors;
  torch::Tensor dense = torch::diag(torch::tensor(t.alphas, torch::kFloat64));
  if (m > 1) {
    const torch::Tensor off = torch::tensor(t.betas, torch::kFloat64);
    dense += torch::diag(off, 1) + torch::diag(off, -1);
  }
  const torch::Tensor s = std::get<1>(torch::linalg_eigh(dense));  // ascending
  const torch::Tensor top =
      s.narrow(1, m - count, count).flip({1}).t().to(basis.options());
  const torch::Tensor y = top.mm(basis);
  // Unit already to rounding; normalised so that callers can rely on it.
  const torch::Tensor unit = y / y.norm(2, {1}, /*keepdim=*/true);
  for (int64_t i = 0; i < count; ++i) vectors.push_back(unit[i]);
  return vectors;
}

}  // namespace

absl::StatusOr<SharpnessResult> Lanczos(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const LanczosOptions& lanczos, const Progress& progress,
    std::vector<torch::Tensor>* top_eigenvectors) {
  if (size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("Lanczos needs a non-empty operator, got size ", size));
  }
  const int64_t max_steps = std::min<int64_t>(lanczos.max_iterations, size);
  const double eps = UnitRoundoff(options);
  at::Generator generator = SeededGenerator(lanczos.seed);
  auto gaussian = [&] {
    return RandomProbe(size, ProbeDistribution::kGaussian, generator, options);
  };
  SharpnessResult result;
  LanczosHooks hooks;
  hooks.before_step = [&progress](int64_t step) -> absl::Status {
    if (progress.cancelled && progress.cancelled()) {
      return absl::CancelledError(
          absl::StrCat("cancelled at Lanczos step ", step));
    }
    return absl::OkStatus();
  };
  hooks.fresh_vector = gaussian;
  hooks.after_step =
      [&](const LanczosStep& step) -> absl::StatusOr<LanczosNext> {
    CURVD_ASSIGN_OR_RETURN(TridiagonalEigen eig,
                           SolveTridiagonal(*step.alphas, *step.betas));
    const int64_t m = step.index + 1;
    const double t_norm =
        std::max(std::abs(eig.values.front()), std::abs(eig.values.back()));
    // Once the basis spans the whole space, or A maps its span into itself,
    // the Ritz pairs are exact.
    const bool breakdown =
        m == size || step.beta <= kBreakdownUlps * eps * t_norm;
    const double residual_beta = breakdown ? 0.0 : step.beta;
    const double floor = std::pow(eps, 2.0 / 3.0) * t_norm;
    auto pair = [&](int64_t i) {
      Eigenpair p;
      p.value = eig.values[i];
      p.residual_norm = std::abs(residual_beta * eig.last_components[i]);
      p.converged = p.residual_norm <= lanczos.relative_tolerance *
                                           std::max(std::abs(p.value), floor);
      return p;
    };
    result.top.clear();
    result.bottom.clear();
    for (int64_t i = m - 1; i >= std::max<int64_t>(0, m - lanczos.top_k); --i) {
      result.top.push_back(pair(i));
    }
    for (int64_t i = 0; i < std::min<int64_t>(lanczos.bottom_k, m); ++i) {
      result.bottom.push_back(pair(i));
    }
    result.iterations = static_cast<int>(m);
    const bool enough =
        m == size || (m >= lanczos.top_k && m >= lanczos.bottom_k);
    auto is_converged = [](const Eigenpair& p) { return p.converged; };
    result.converged =
        enough &&
        std::all_of(result.top.begin(), result.top.end(), is_converged) &&
        std::all_of(result.bottom.begin(), result.bottom.end(), is_converged);
    if (progress.report) {
      // eig.values rather than result.top, which is empty when top_k is 0.
      progress.report(
          static_cast<double>(m) / max_steps,
          absl::StrFormat("Lanczos step %d/%d, largest Ritz value %.6g", m,
                          max_steps, eig.values.back()));
    }
    if (result.converged) return LanczosNext::kStop;
    return breakdown ? LanczosNext::kRestart : LanczosNext::kExtend;
  };
  LanczosKernel kernel(max_steps, size, options, kInitialBasisRows, "Lanczos");
  CURVD_ASSIGN_OR_RETURN(const LanczosTridiagonal t,
                         kernel.Run(op, gaussian(), hooks));
  if (top_eigenvectors != nullptr) {
    *top_eigenvectors = TopRitzVectors(kernel.basis(), t,
                                       static_cast<int64_t>(result.top.size()));
  }
  return result;
}

}  // namespace curvd::core

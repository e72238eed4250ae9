#include "core/lanczos.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "core/tridiagonal_eigen.h"

namespace curvd::core {
namespace {

// beta at or below this many rounding units of ||T|| is a breakdown: what is
// left of A q after removing the basis is rounding noise.
constexpr double kBreakdownUlps = 100;
// Rows the Lanczos basis starts with; it doubles when full.
constexpr int64_t kInitialBasisRows = 16;

double UnitRoundoff(const torch::TensorOptions& options) {
  return options.dtype() == torch::kFloat64
             ? std::numeric_limits<double>::epsilon()
             : static_cast<double>(std::numeric_limits<float>::epsilon());
}

// The orthonormal Lanczos vectors, rows of a matrix that grows by doubling (up
// to max_rows; preallocating max_iterations + 1 rows of a large model could
// take more memory than the run needs), so that reorthogonalisation is two
// matrix-vector products into reused buffers.
class Basis {
 public:
  Basis(int64_t max_rows, int64_t size, const torch::TensorOptions& options)
      : max_rows_(max_rows),
        rows_(torch::empty({std::min(kInitialBasisRows, max_rows), size},
                           options)),
        coefficients_(torch::empty({max_rows}, options)),
        residual_(torch::empty({size}, options)) {}

  int64_t size() const { return used_; }
  torch::Tensor row(int64_t i) const { return rows_[i]; }
  // The rows in use, [size(), vector size].
  torch::Tensor rows() const { return rows_.narrow(0, 0, used_); }

  // Appends w / norm.
  void Append(const torch::Tensor& w, double norm) {
    if (used_ == rows_.size(0)) {
      const int64_t grown = std::min(2 * rows_.size(0), max_rows_);
      rows_ = torch::cat(
          {rows_, torch::empty({grown - rows_.size(0), rows_.size(1)},
                               rows_.options())});
    }
    rows_[used_++].copy_(w).div_(norm);
  }

  // w minus its projection on the basis, by classical Gram-Schmidt twice: once
  // is not enough in floating point ("twice is enough", Kahan and Parlett).
  // Returns a buffer of the basis, valid until the next call.
  const torch::Tensor& Orthogonalise(const torch::Tensor& w) {
    const torch::Tensor q = rows_.narrow(0, 0, used_);
    torch::Tensor c = coefficients_.narrow(0, 0, used_);
    torch::mv_out(c, q, w);
    torch::addmv_out(residual_, w, q.t(), c, /*beta=*/1, /*alpha=*/-1);
    torch::mv_out(c, q, residual_);
    residual_.addmv_(q.t(), c, /*beta=*/1, /*alpha=*/-1);
    return residual_;
  }

 private:
  int64_t max_rows_;
  torch::Tensor rows_;
  torch::Tensor coefficients_;
  torch::Tensor residual_;
  int64_t used_ = 0;
};

// The unit Ritz vectors Q^T s_i of the `count` largest Ritz values, largest
// first, from the eigenvectors s_i of T_m: the tridiagonal solver keeps only
// their last components, so T_m (m x m, small) is solved again densely.
std::vector<torch::Tensor> TopRitzVectors(const Basis& basis,
                                          const std::vector<double>& alphas,
                                          const std::vector<double>& betas,
                                          int64_t count) {
  const int64_t m = static_cast<int64_t>(alphas.size());
  std::vector<torch::Tensor> vectors;
  if (count == 0) return vectors;
  torch::Tensor t = torch::diag(torch::tensor(alphas, torch::kFloat64));
  if (m > 1) {
    const torch::Tensor off = torch::tensor(betas, torch::kFloat64);
    t += torch::diag(off, 1) + torch::diag(off, -1);
  }
  const torch::Tensor s = std::get<1>(torch::linalg_eigh(t));  // ascending
  const torch::Tensor q = basis.rows();
  const torch::Tensor top =
      s.narrow(1, m - count, count).flip({1}).t().to(q.options());
  const torch::Tensor y = top.mm(q);
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
  Basis basis(max_steps + 1, size, options);
  {
    const torch::Tensor start =
        RandomProbe(size, ProbeDistribution::kGaussian, generator, options);
    basis.Append(start, start.norm().item<double>());
  }
  std::vector<double> alphas;
  std::vector<double> betas;  // betas[j] couples steps j and j + 1
  SharpnessResult result;
  for (int64_t step = 0; step < max_steps; ++step) {
    if (progress.cancelled && progress.cancelled()) {
      return absl::CancelledError(
          absl::StrCat("cancelled at Lanczos step ", step));
    }
    const torch::Tensor q = basis.row(step);
    CURVD_ASSIGN_OR_RETURN(const torch::Tensor product, op(q));
    const torch::Tensor alpha_on_device = q.dot(product);
    const torch::Tensor& w = basis.Orthogonalise(product);
    // alpha and beta are the step's only reads from the device: one wait. Any
    // NaN or Inf in the product makes alpha non-finite (0 * Inf is NaN).
    const torch::Tensor scalars = torch::stack({alpha_on_device, w.norm()})
                                      .to(torch::kCPU, torch::kFloat64);
    const double alpha = scalars[0].item<double>();
    const double beta = scalars[1].item<double>();
    if (!std::isfinite(alpha) || !std::isfinite(beta)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the operator product at Lanczos step ", step,
                       " is not finite (alpha = q^T A q = ", alpha, ")"));
    }
    alphas.push_back(alpha);

    CURVD_ASSIGN_OR_RETURN(TridiagonalEigen eig,
                           SolveTridiagonal(alphas, betas));
    const int64_t m = step + 1;
    const double t_norm =
        std::max(std::abs(eig.values.front()), std::abs(eig.values.back()));
    // Once the basis spans the whole space, or A maps its span into itself, the
    // Ritz pairs are exact.
    const bool breakdown = m == size || beta <= kBreakdownUlps * eps * t_norm;
    const double residual_beta = breakdown ? 0.0 : beta;
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
    if (result.converged || m == max_steps) break;

    if (breakdown) {
      const torch::Tensor fresh =
          RandomProbe(size, ProbeDistribution::kGaussian, generator, options);
      const torch::Tensor& restart = basis.Orthogonalise(fresh);
      const double norm = restart.norm().item<double>();
      // Nothing of a random vector left but rounding noise: the basis already
      // spans the space.
      if (!(norm > std::sqrt(eps) * fresh.norm().item<double>())) break;
      betas.push_back(0.0);
      basis.Append(restart, norm);
    } else {
      betas.push_back(beta);
      basis.Append(w, beta);
    }
  }
  if (top_eigenvectors != nullptr) {
    *top_eigenvectors = TopRitzVectors(basis, alphas, betas,
                                       static_cast<int64_t>(result.top.size()));
  }
  return result;
}

}  // namespace curvd::core

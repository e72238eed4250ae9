#include "core/estimators/hutchpp.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/estimators/term_and_norm.h"
#include "core/linalg/orthonormal_rows.h"

namespace curvd::core {
namespace {

absl::Status ValidateHutchppOptions(const HutchppOptions& hutchpp) {
  if (hutchpp.max_hvps < 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("Hutch++ max_hvps must be >= 3, got ", hutchpp.max_hvps));
  }
  if (hutchpp.sketch_size < 0 ||
      2 * static_cast<int64_t>(hutchpp.sketch_size) >= hutchpp.max_hvps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Hutch++ sketch_size must be >= 0 with 2 * sketch_size < max_hvps = ",
        hutchpp.max_hvps, ", got ", hutchpp.sketch_size));
  }
  if (hutchpp.min_residual_probes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("Hutch++ min_residual_probes must be >= 1, got ",
                     hutchpp.min_residual_probes));
  }
  if (!(hutchpp.target_relative_error >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Hutch++ target_relative_error must be >= 0, got ",
                     hutchpp.target_relative_error));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HutchppResult> HutchPlusPlus(const LinearOperator& op,
                                            int64_t size,
                                            const torch::TensorOptions& options,
                                            const HutchppOptions& hutchpp,
                                            const Progress& progress) {
  if (size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("Hutch++ needs a non-empty operator, got size ", size));
  }
  CURVD_RETURN_IF_ERROR(ValidateHutchppOptions(hutchpp));
  const int64_t k = std::min<int64_t>(
      hutchpp.sketch_size > 0 ? hutchpp.sketch_size : hutchpp.max_hvps / 3,
      size);
  at::Generator generator = SeededGenerator(hutchpp.seed);
  HutchppResult result;
  result.sketch_size = static_cast<int>(k);

  // Polls cancellation, reports progress, applies op and checks the product.
  auto product = [&](const torch::Tensor& v, const char* stage,
                     int64_t index) -> absl::StatusOr<torch::Tensor> {
    if (progress.cancelled && progress.cancelled()) {
      return absl::CancelledError(
          absl::StrCat("cancelled at Hutch++ ", stage, " ", index));
    }
    if (progress.report) {
      progress.report(
          static_cast<double>(result.hvps) / hutchpp.max_hvps,
          absl::StrFormat("Hutch++ %s %d, %d/%d products", stage, index + 1,
                          result.hvps, hutchpp.max_hvps));
    }
    CURVD_ASSIGN_OR_RETURN(torch::Tensor av, op(v));
    ++result.hvps;
    return av;
  };
  auto not_finite = [](const char* what, int64_t index) {
    return absl::InvalidArgumentError(
        absl::StrCat("Hutch++ ", what, " ", index, " is not finite"));
  };

  double sketch_frobenius = 0;    // |A Q|_F^2
  double residual_frobenius = 0;  // running mean of |A g|^2
  // Q: an orthonormal basis of A S, rows of a k x size matrix.
  torch::Tensor sketch = torch::empty({k, size}, options);
  for (int64_t i = 0; i < k; ++i) {
    const torch::Tensor s =
        RandomProbe(size, hutchpp.distribution, generator, options);
    CURVD_ASSIGN_OR_RETURN(torch::Tensor as, product(s, "sketch", i));
    sketch[i].copy_(as);
  }
  if (!torch::isfinite(sketch).all().item<bool>()) {
    return absl::InvalidArgumentError("a Hutch++ sketch product is not finite");
  }
  // Orthonormalised in float64: a float32 Gram-Schmidt would lose
  // orthogonality on the fast-decaying spectra Hutch++ is for.
  const torch::Tensor basis =
      OrthonormalRows(sketch.to(torch::kFloat64)).to(options);
  sketch = torch::Tensor();  // A S is no longer needed
  for (int64_t i = 0; i < k; ++i) {
    const torch::Tensor qi = basis[i];
    CURVD_ASSIGN_OR_RETURN(torch::Tensor aq, product(qi, "low-rank trace", i));
    const auto [term, norm_squared] = TermAndNormSquared(qi, aq);
    if (!std::isfinite(term)) return not_finite("q^T A q of column", i);
    result.low_rank_trace += term;
    sketch_frobenius += norm_squared;
  }

  const int64_t max_residual = hutchpp.max_hvps - 2 * k;
  double mean = 0;
  double sum_squared_deviations = 0;  // Welford's M2
  result.stop_reason = "max_hvps";
  for (int64_t probe = 1; probe <= max_residual; ++probe) {
    torch::Tensor g =
        RandomProbe(size, hutchpp.distribution, generator, options);
    if (k > 0) g = g - basis.t().mv(basis.mv(g));
    CURVD_ASSIGN_OR_RETURN(torch::Tensor ag,
                           product(g, "residual probe", probe - 1));
    const auto [term, norm_squared] = TermAndNormSquared(g, ag);
    if (!std::isfinite(term)) return not_finite("residual probe", probe);
    residual_frobenius += (norm_squared - residual_frobenius) / probe;
    const double delta = term - mean;
    mean += delta / probe;
    sum_squared_deviations += delta * (term - mean);

    result.residual_probes = static_cast<int>(probe);
    result.residual_trace = mean;
    result.trace = result.low_rank_trace + mean;
    result.standard_error =
        probe > 1 ? std::sqrt(sum_squared_deviations / (probe - 1) / probe)
                  : 0.0;
    if (probe < hutchpp.min_residual_probes ||
        hutchpp.target_relative_error <= 0) {
      continue;
    }
    if (sum_squared_deviations == 0) {
      result.stop_reason = "exact_zero_variance";
      break;
    }
    if (result.standard_error <=
        hutchpp.target_relative_error * std::abs(result.trace)) {
      result.stop_reason = "target_relative_error";
      break;
    }
  }
  result.frobenius_norm_squared = sketch_frobenius + residual_frobenius;
  result.sketch_frobenius_fraction =
      result.frobenius_norm_squared > 0
          ? sketch_frobenius / result.frobenius_norm_squared
          : 1.0;
  result.hutchinson_standard_error_same_hvps =
      std::sqrt(2 * result.frobenius_norm_squared / result.hvps);
  return result;
}

}  // namespace curvd::core

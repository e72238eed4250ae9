#include "core/measurements/exact_hessian.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/api/measurement.h"

namespace curvd::core {
namespace {

// Tiles of the in-place symmetrisation: two of them are copied at a time.
constexpr int64_t kSymmetriseTile = 1024;

}  // namespace

absl::StatusOr<torch::Tensor> AssembleSymmetricMatrix(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    int block_size, const Progress& progress, double* asymmetry) {
  if (size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an exact Hessian needs a non-empty operator, got size ", size));
  }
  if (block_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size must be >= 1, got ", block_size));
  }
  torch::Tensor matrix = torch::empty({size, size}, torch::kFloat64);
  for (int64_t start = 0; start < size; start += block_size) {
    const int64_t rows = std::min<int64_t>(block_size, size - start);
    torch::Tensor block = torch::empty({rows, size}, options);
    for (int64_t i = start; i < start + rows; ++i) {
      if (progress.cancelled && progress.cancelled()) {
        return absl::CancelledError(
            absl::StrCat("cancelled at exact Hessian column ", i));
      }
      if (progress.report) {
        progress.report(
            static_cast<double>(i) / size,
            absl::StrFormat("exact Hessian column %d/%d", i + 1, size));
      }
      torch::Tensor unit = torch::zeros({size}, options);
      unit[i] = 1;
      CURVD_ASSIGN_OR_RETURN(torch::Tensor column, op(unit));
      block[i - start].copy_(column);
    }
    if (!torch::isfinite(block).all().item<bool>()) {
      return absl::InvalidArgumentError(
          absl::StrCat("an exact Hessian product among columns ", start, "..",
                       start + rows - 1, " is not finite"));
    }
    matrix.narrow(0, start, rows).copy_(block);
  }

  const double largest = matrix.abs().max().item<double>();
  double difference = 0;
  for (int64_t i0 = 0; i0 < size; i0 += kSymmetriseTile) {
    const int64_t ni = std::min(kSymmetriseTile, size - i0);
    for (int64_t j0 = i0; j0 < size; j0 += kSymmetriseTile) {
      const int64_t nj = std::min(kSymmetriseTile, size - j0);
      torch::Tensor upper = matrix.narrow(0, i0, ni).narrow(1, j0, nj);
      torch::Tensor lower = matrix.narrow(0, j0, nj).narrow(1, i0, ni);
      difference =
          std::max(difference, (upper - lower.t()).abs().max().item<double>());
      const torch::Tensor mean = (upper + lower.t()) / 2;
      upper.copy_(mean);
      lower.copy_(mean.t());
    }
  }
  if (asymmetry != nullptr) {
    *asymmetry = largest > 0 ? difference / largest : 0.0;
  }
  return matrix;
}

ExactHessianResult SummariseSpectrum(std::vector<double> eigenvalues,
                                     double unit_roundoff,
                                     const std::string& dtype_name) {
  ExactHessianResult result;
  result.num_parameters = static_cast<int64_t>(eigenvalues.size());
  double largest = 0;
  for (double value : eigenvalues) largest = std::max(largest, std::abs(value));
  result.rank_tolerance =
      largest * static_cast<double>(result.num_parameters) * unit_roundoff;
  result.rank_rule = absl::StrFormat(
      "|lambda| > max|lambda| * P * eps = %.17g * %d * %.17g (%s) = %.17g",
      largest, result.num_parameters, unit_roundoff, dtype_name,
      result.rank_tolerance);
  double smallest_counted = std::numeric_limits<double>::infinity();
  double largest_counted = 0;
  for (double value : eigenvalues) {
    if (std::abs(value) <= result.rank_tolerance) continue;
    ++result.rank;
    if (value > 0) {
      ++result.positive;
      result.log_determinant_positive += std::log(value);
    } else {
      ++result.negative;
    }
    smallest_counted = std::min(smallest_counted, std::abs(value));
    largest_counted = std::max(largest_counted, std::abs(value));
  }
  result.condition_number = result.rank > 0
                                ? largest_counted / smallest_counted
                                : std::numeric_limits<double>::quiet_NaN();
  result.eigenvalues = std::move(eigenvalues);
  return result;
}

absl::StatusOr<ExactHessianResult> ExactHessian(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const ExactHessianOptions& exact, const Progress& progress) {
  CURVD_RETURN_IF_ERROR(CheckExactHessianSize(size, exact));
  double asymmetry = 0;
  CURVD_ASSIGN_OR_RETURN(
      torch::Tensor matrix,
      AssembleSymmetricMatrix(op, size, options, exact.block_size, progress,
                              &asymmetry));
  if (progress.cancelled && progress.cancelled()) {
    return absl::CancelledError(
        "cancelled before the exact Hessian's eigvalsh");
  }
  if (progress.report) {
    progress.report(
        1.0, absl::StrFormat("eigvalsh of the %d x %d Hessian", size, size));
  }
  const torch::Tensor values = torch::linalg_eigvalsh(matrix).contiguous();
  std::vector<double> eigenvalues(values.data_ptr<double>(),
                                  values.data_ptr<double>() + size);
  const bool float64 = options.dtype() == torch::kFloat64;
  ExactHessianResult result = SummariseSpectrum(
      std::move(eigenvalues),
      float64 ? std::numeric_limits<double>::epsilon()
              : static_cast<double>(std::numeric_limits<float>::epsilon()),
      float64 ? "float64" : "float32");
  result.asymmetry = asymmetry;
  result.hvps = size;
  if (exact.return_matrix) {
    const torch::Tensor flat = matrix.contiguous().view({-1});
    result.matrix.assign(flat.data_ptr<double>(),
                         flat.data_ptr<double>() + size * size);
  }
  return result;
}

}  // namespace curvd::core

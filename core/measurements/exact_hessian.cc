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
#include "core/linalg/lanczos_kernel.h"

namespace curvd::core {
namespace {

// Tiles of the in-place symmetrisation: two of them are copied at a time.
constexpr int64_t kSymmetriseTile = 1024;

// ||(m - m^T) / 2||_2 by power iteration. The antisymmetric part A is normal
// with eigenvalues +-i sigma_k, so ||A v|| of the iterates rises to the
// largest sigma even though v itself turns in its plane. No P x P copy: A v
// is (m v - m^T v) / 2.
double AntisymmetricNorm(const torch::Tensor& m) {
  at::Generator generator = SeededGenerator(0);
  torch::Tensor v = RandomProbe(m.size(0), ProbeDistribution::kGaussian,
                                generator, m.options());
  v /= v.norm();
  double norm = 0;
  for (int step = 0; step < kAsymmetryNormSteps; ++step) {
    const torch::Tensor w = (m.mv(v) - m.t().mv(v)) / 2;
    norm = w.norm().item<double>();
    if (norm == 0) break;
    v = w / norm;
  }
  return norm;
}

// How many of `eigenvalues` have |lambda| > tolerance.
int64_t CountAbove(const std::vector<double>& eigenvalues, double tolerance) {
  return std::count_if(
      eigenvalues.begin(), eigenvalues.end(),
      [tolerance](double value) { return std::abs(value) > tolerance; });
}

// Fills the cut's clarity: the gap across rank_tolerance, the ranks a decade
// either side, rank_clear_cut and rank_warning.
void JudgeCut(const std::vector<double>& eigenvalues,
              ExactHessianResult* result) {
  const double tolerance = result->rank_tolerance;
  double upper = std::numeric_limits<double>::infinity();  // smallest counted
  double lower = -1;                                       // largest uncounted
  for (double value : eigenvalues) {
    const double magnitude = std::abs(value);
    if (magnitude > tolerance) {
      upper = std::min(upper, magnitude);
    } else {
      lower = std::max(lower, magnitude);
    }
  }
  if (std::isinf(upper)) upper = tolerance;
  if (lower < 0) lower = tolerance;
  result->rank_gap_decades = lower == 0
                                 ? std::numeric_limits<double>::infinity()
                                 : std::log10(upper / lower);
  result->rank_at_tenth_tolerance =
      CountAbove(eigenvalues, tolerance / kRankDecade);
  result->rank_at_tenfold_tolerance =
      CountAbove(eigenvalues, tolerance * kRankDecade);
  result->rank_clear_cut =
      result->rank_at_tenth_tolerance == result->rank_at_tenfold_tolerance ||
      result->rank_gap_decades >= kClearGapDecades;
  if (!result->rank_clear_cut) {
    result->rank_warning = absl::StrFormat(
        "rank %d is not clear-cut: it is %d at tolerance/%g and %d at "
        "tolerance*%g, and the gap across the cut spans only %.2f decades "
        "(|lambda| %.3g counted, %.3g not); eigenvalues lie near the rounding "
        "noise (%.3g)",
        result->rank, result->rank_at_tenth_tolerance, kRankDecade,
        result->rank_at_tenfold_tolerance, kRankDecade,
        result->rank_gap_decades, upper, lower, result->noise_scale);
  }
}

}  // namespace

absl::StatusOr<torch::Tensor> AssembleSymmetricMatrix(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    int block_size, const Progress& progress, MatrixAsymmetry* asymmetry) {
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

  if (asymmetry != nullptr) {
    asymmetry->spectral_norm = AntisymmetricNorm(matrix);
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
    asymmetry->max_relative = largest > 0 ? difference / largest : 0.0;
  }
  return matrix;
}

ExactHessianResult SummariseSpectrum(std::vector<double> eigenvalues,
                                     const SpectrumNoise& noise) {
  ExactHessianResult result;
  result.num_parameters = static_cast<int64_t>(eigenvalues.size());
  const double size = static_cast<double>(result.num_parameters);
  double largest = 0;
  double squares = 0;
  for (double value : eigenvalues) {
    largest = std::max(largest, std::abs(value));
    squares += value * value;
  }
  const double representation = noise.epsilon * std::sqrt(squares);
  result.noise_scale = std::max(noise.asymmetry_norm, representation);
  const double eigvalsh_floor =
      largest * size * std::numeric_limits<double>::epsilon();
  result.rank_tolerance =
      std::max(kRankNoiseFactor * result.noise_scale, eigvalsh_floor);
  result.worst_case_tolerance = largest * size * noise.epsilon;
  result.worst_case_rank = CountAbove(eigenvalues, result.worst_case_tolerance);
  result.rank_rule = absl::StrFormat(
      "|lambda| > max(%g * noise, max|lambda| * P * eps_float64) = max(%g * "
      "%.6g, %.17g * %d * %.17g) = %.17g; noise = max(||(H - H^T)/2||_2, "
      "eps_%s * ||H||_F) = max(%.6g, %.6g * %.6g); the worst-case "
      "max|lambda| * P * eps_%s = %.6g would give rank %d",
      kRankNoiseFactor, kRankNoiseFactor, result.noise_scale, largest,
      result.num_parameters, std::numeric_limits<double>::epsilon(),
      result.rank_tolerance, noise.dtype_name, noise.asymmetry_norm,
      noise.epsilon, std::sqrt(squares), noise.dtype_name,
      result.worst_case_tolerance, result.worst_case_rank);
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
  JudgeCut(eigenvalues, &result);
  result.eigenvalues = std::move(eigenvalues);
  return result;
}

absl::StatusOr<ExactHessianResult> ExactHessian(
    const LinearOperator& op, int64_t size, const torch::TensorOptions& options,
    const ExactHessianOptions& exact, const Progress& progress) {
  CURVD_RETURN_IF_ERROR(CheckExactHessianSize(size, exact));
  MatrixAsymmetry asymmetry;
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
  SpectrumNoise noise;
  noise.epsilon = UnitRoundoff(options);
  noise.dtype_name = options.dtype() == torch::kFloat64 ? "float64" : "float32";
  noise.asymmetry_norm = asymmetry.spectral_norm;
  ExactHessianResult result = SummariseSpectrum(std::move(eigenvalues), noise);
  result.asymmetry = asymmetry.max_relative;
  result.hvps = size;
  if (exact.return_matrix) {
    const torch::Tensor flat = matrix.contiguous().view({-1});
    result.matrix.assign(flat.data_ptr<double>(),
                         flat.data_ptr<double>() + size * size);
  }
  return result;
}

}  // namespace curvd::core

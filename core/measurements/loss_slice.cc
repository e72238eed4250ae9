#include "core/measurements/loss_slice.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace curvd::core {

std::vector<double> SliceGrid(const LossSliceOptions& options) {
  std::vector<double> t;
  if (options.points < 1) return t;
  t.reserve(options.points);
  t.push_back(options.t_min);
  for (int i = 1; i < options.points; ++i) {
    t.push_back(options.t_min +
                (options.t_max - options.t_min) * i / (options.points - 1));
  }
  return t;
}

SliceDirectionVector TopEigenvectorDirection(torch::Tensor v,
                                             const Eigenpair& pair,
                                             const std::string& op_name,
                                             const std::string& source) {
  SliceDirectionVector direction;
  direction.v = std::move(v);
  direction.described.eigenvalue = pair.value;
  direction.described.residual_norm = pair.residual_norm;
  direction.described.direction = absl::StrFormat(
      "top eigenvector of %s from %s, lambda = %.17g, residual %.3g%s", op_name,
      source, pair.value, pair.residual_norm,
      pair.converged ? "" : " (not converged)");
  return direction;
}

SliceDirectionVector RandomDirection(int64_t size,
                                     const torch::TensorOptions& options,
                                     uint64_t seed) {
  at::Generator generator = SeededGenerator(seed);
  const torch::Tensor z =
      RandomProbe(size, ProbeDistribution::kGaussian, generator, options);
  SliceDirectionVector direction;
  direction.v = z / z.norm();
  direction.described.direction =
      absl::StrCat("random Gaussian, unit norm, seed ", seed);
  return direction;
}

absl::StatusOr<LossSliceResult> SliceLoss(Objective& objective,
                                          const LinearOperator& op,
                                          const LossSliceOptions& options,
                                          SliceDirectionVector direction,
                                          const Progress& progress) {
  if (options.points < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("loss_slice.points must be >= 1, got ", options.points));
  }
  LossSliceResult result = std::move(direction.described);
  const torch::Tensor& v = direction.v;
  if (progress.cancelled && progress.cancelled()) {
    return absl::CancelledError("cancelled before the loss slice's v^T H v");
  }
  if (progress.report) progress.report(0, "loss slice: v^T H v");
  CURVD_ASSIGN_OR_RETURN(const torch::Tensor hv, op(v));
  result.direction_curvature = v.dot(hv).item<double>();
  if (!std::isfinite(result.direction_curvature)) {
    return absl::InvalidArgumentError(
        "v^T H v of the loss slice is not finite");
  }
  if (progress.cancelled && progress.cancelled()) {
    return absl::CancelledError("cancelled before the loss slice's losses");
  }
  if (progress.report) {
    progress.report(0.5, absl::StrCat("loss slice: the loss at ",
                                      options.points, " points"));
  }
  result.t = SliceGrid(options);
  CURVD_ASSIGN_OR_RETURN(result.loss, objective.LossAlong(v, result.t));
  return result;
}

}  // namespace curvd::core

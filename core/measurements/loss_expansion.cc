#include "core/measurements/loss_expansion.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace curvd::core {

absl::Status ValidateLossExpansionOptions(const LossExpansionOptions& options) {
  const struct {
    const char* name;
    double value;
  } fields[] = {{"rho", options.rho},
                {"h0", options.h0},
                {"ess", options.ess},
                {"num_steps", options.num_steps}};
  for (const auto& field : fields) {
    if (!(field.value > 0) || !std::isfinite(field.value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("loss_expansion.", field.name,
                       " must be finite and > 0, got ", field.value));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LossExpansionResult> ExpandLoss(
    const LossExpansionOptions& options, double gradient_norm_squared,
    double gradient_curvature, const TraceResult& trace_cubed) {
  CURVD_RETURN_IF_ERROR(ValidateLossExpansionOptions(options));
  LossExpansionResult result;
  result.gradient_norm_squared = gradient_norm_squared;
  result.gradient_curvature = gradient_curvature;
  result.trace_cubed = trace_cubed;
  result.sigma_squared = 1 / (options.h0 * options.ess);
  const double rho_squared = options.rho * options.rho;
  result.first_order_term = -options.rho * gradient_norm_squared;
  result.second_order_term = rho_squared / 2 * gradient_curvature;
  const double noise_coefficient =
      rho_squared * result.sigma_squared / (2 * options.num_steps);
  result.noise_term = noise_coefficient * trace_cubed.trace;
  result.noise_term_standard_error =
      noise_coefficient * trace_cubed.standard_error;
  result.total =
      result.first_order_term + result.second_order_term + result.noise_term;
  result.total_standard_error = result.noise_term_standard_error;
  return result;
}

absl::StatusOr<LossExpansionResult> MeasureLossExpansion(
    Objective& objective, const LinearOperator& op,
    const LossExpansionOptions& options, const TraceResult& trace_cubed) {
  CURVD_RETURN_IF_ERROR(ValidateLossExpansionOptions(options));
  CURVD_ASSIGN_OR_RETURN(const torch::Tensor g, objective.Gradient());
  CURVD_ASSIGN_OR_RETURN(const torch::Tensor hg, op(g));
  // Both read from the device in one transfer.
  const torch::Tensor sums =
      torch::stack({g.dot(g), g.dot(hg)}).to(torch::kCPU, torch::kFloat64);
  const double gradient_curvature = sums[1].item<double>();
  if (!std::isfinite(gradient_curvature)) {
    return absl::InvalidArgumentError(
        "g^T H g of the loss expansion is not finite");
  }
  return ExpandLoss(options, sums[0].item<double>(), gradient_curvature,
                    trace_cubed);
}

}  // namespace curvd::core

#include "core/samplers/sgld.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {
namespace {

// Whether `value` is a number > 0 (strict) or >= 0.
bool Positive(double value) { return value > 0 && std::isfinite(value); }
bool NonNegative(double value) { return value >= 0 && std::isfinite(value); }

absl::Status CheckOptions(const SgldStepOptions& options) {
  if (!Positive(options.step_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step_size must be finite and > 0, got ", options.step_size));
  }
  if (!Positive(options.n_beta)) {
    return absl::InvalidArgumentError(
        absl::StrCat("n_beta must be finite and > 0, got ", options.n_beta));
  }
  if (!NonNegative(options.localization)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "localization must be finite and >= 0, got ", options.localization));
  }
  if (!NonNegative(options.prior_precision)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prior_precision must be finite and >= 0, got ",
                     options.prior_precision));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SgldStep(const SgldStepOptions& options,
                      const torch::Tensor& gradients,
                      const torch::Tensor& center, at::Generator& generator,
                      torch::Tensor& chains) {
  if (absl::Status status = CheckOptions(options); !status.ok()) return status;
  if (chains.dim() != 2 || gradients.sizes() != chains.sizes() ||
      center.dim() != 1 || center.size(0) != chains.size(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SGLD needs chains [C, P], gradients [C, P] and a center [P], got ",
        c10::str(chains.sizes()), ", ", c10::str(gradients.sizes()), " and ",
        c10::str(center.sizes())));
  }
  const double half_step = options.step_size / 2;
  torch::Tensor drift = gradients * options.n_beta;
  if (options.localization > 0) {
    drift.add_(chains - center, options.localization);
  }
  if (options.prior_precision > 0) {
    drift.add_(chains, options.prior_precision);
  }
  const torch::Tensor noise =
      RandomProbes(chains.size(0), chains.size(1), ProbeDistribution::kGaussian,
                   generator, chains.options());
  chains.add_(drift, -half_step).add_(noise, std::sqrt(options.step_size));
  return absl::OkStatus();
}

}  // namespace curvd::core

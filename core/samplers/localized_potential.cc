#include "core/samplers/localized_potential.h"

#include <torch/torch.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace curvd::core {

LocalizedPotential::LocalizedPotential(double n_beta, double localization,
                                       double prior_precision,
                                       torch::Tensor center)
    : n_beta_(n_beta),
      localization_(localization),
      prior_precision_(prior_precision),
      center_(std::move(center)),
      scaled_center_(center_ * localization) {}

torch::Tensor LocalizedPotential::Drift(const torch::Tensor& gradients,
                                        const torch::Tensor& chains) const {
  // gamma (w - w*) + precision w = (gamma + precision) w - gamma w*: two
  // in-place kernels after the scaling, and no [C, P] temporary.
  torch::Tensor drift = gradients * n_beta_;
  const double pull = localization_ + prior_precision_;
  if (pull > 0) drift.add_(chains, pull);
  if (localization_ > 0) drift.sub_(scaled_center_);
  return drift;
}

torch::Tensor LocalizedPotential::Energy(const torch::Tensor& losses,
                                         const torch::Tensor& chains) const {
  torch::Tensor energy = losses.to(torch::kFloat64) * n_beta_;
  if (localization_ > 0) {
    energy.add_(RowSquaredNorms(chains - center_), localization_ / 2);
  }
  if (prior_precision_ > 0) {
    energy.add_(RowSquaredNorms(chains), prior_precision_ / 2);
  }
  return energy;
}

absl::Status LocalizedPotential::CheckChains(const torch::Tensor& chains,
                                             const torch::Tensor& state) const {
  if (!chains.defined() || chains.dim() != 2 ||
      chains.size(1) != center_.size(0) ||
      chains.scalar_type() != center_.scalar_type() ||
      chains.device() != center_.device()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the chains must be [C, ", center_.size(0), "] ",
        c10::toString(center_.scalar_type()), " on ", center_.device().str(),
        " as the center is, got ",
        chains.defined() ? absl::StrCat(c10::str(chains.sizes()), " ",
                                        c10::toString(chains.scalar_type()),
                                        " on ", chains.device().str())
                         : "an undefined tensor"));
  }
  if (state.defined() && state.size(0) != chains.size(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the sampler's state is for ", state.size(0),
                     " chains, got ", chains.size(0)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ChainEvaluation> LocalizedPotential::Evaluate(
    ChainEvaluator evaluate, const torch::Tensor& chains) const {
  CURVD_ASSIGN_OR_RETURN(ChainEvaluation evaluation, evaluate(chains));
  const int64_t count = chains.size(0);
  if (!evaluation.losses.defined() || evaluation.losses.dim() != 1 ||
      evaluation.losses.size(0) != count || !evaluation.gradients.defined() ||
      evaluation.gradients.sizes() != chains.sizes()) {
    return absl::InternalError(absl::StrCat(
        "the chains' evaluation must be losses [", count, "] and gradients ",
        c10::str(chains.sizes()), ", got ",
        evaluation.losses.defined() ? c10::str(evaluation.losses.sizes())
                                    : "undefined",
        " and ",
        evaluation.gradients.defined() ? c10::str(evaluation.gradients.sizes())
                                       : "undefined"));
  }
  return evaluation;
}

torch::Tensor RowSquaredNorms(const torch::Tensor& x) {
  return x.square().sum({1}, /*keepdim=*/false, torch::kFloat64);
}

std::vector<double> PerChainValues(const torch::Tensor& values) {
  if (!values.defined()) return {};
  const torch::Tensor host =
      values.to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(host.data_ptr<double>(),
                             host.data_ptr<double>() + host.numel());
}

}  // namespace curvd::core

#include "core/samplers/mala.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "common/status_macros.h"

namespace curvd::core {
Mala::Mala(LocalizedPotential potential, double step_size,
           ChainStreams streams)
    : potential_(std::move(potential)),
      step_size_(step_size),
      streams_(std::move(streams)) {}

absl::Status Mala::Refresh(ChainEvaluator evaluate,
                           const torch::Tensor& chains) {
  if (losses_.defined() && chains.data_ptr() == cached_data_ &&
      chains._version() == cached_version_) {
    return absl::OkStatus();
  }
  CURVD_ASSIGN_OR_RETURN(ChainEvaluation current,
                         potential_.Evaluate(evaluate, chains));
  losses_ = current.losses;
  energies_ = potential_.Energy(current.losses, chains);
  drifts_ = potential_.Drift(current.gradients, chains);
  cached_data_ = chains.data_ptr();
  cached_version_ = chains._version();
  if (!accepted_.defined()) {
    accepted_ =
        torch::zeros({chains.size(0)}, chains.options().dtype(torch::kFloat64));
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> Mala::Step(ChainEvaluator evaluate,
                                         torch::Tensor& chains) {
  CURVD_RETURN_IF_ERROR(potential_.CheckChains(chains, accepted_));
  CURVD_RETURN_IF_ERROR(Refresh(evaluate, chains));
  const torch::Tensor noise =
      streams_.Normal(chains.sizes(), chains.options());
  const torch::Tensor proposal = torch::add(chains, drifts_, -step_size_ / 2)
                                     .add_(noise, std::sqrt(step_size_));
  CURVD_ASSIGN_OR_RETURN(ChainEvaluation proposed,
                         potential_.Evaluate(evaluate, proposal));
  const torch::Tensor proposed_energies =
      potential_.Energy(proposed.losses, proposal);
  const torch::Tensor proposed_drifts =
      potential_.Drift(proposed.gradients, proposal);
  // log q(w' | w) = -||xi||^2 / 2 and log q(w | w') = -||w - w' + (epsilon /
  // 2) grad U(w')||^2 / (2 epsilon), both up to the same constant; the
  // difference is taken in float64.
  const torch::Tensor reverse =
      (chains.to(torch::kFloat64) - proposal.to(torch::kFloat64))
          .add_(proposed_drifts.to(torch::kFloat64), step_size_ / 2);
  const torch::Tensor log_ratio =
      (energies_ - proposed_energies)
          .sub_(RowSquaredNorms(reverse), 1 / (2 * step_size_))
          .add_(RowSquaredNorms(noise), 0.5);
  const torch::Tensor uniform = streams_.Uniform(
      {chains.size(0)}, chains.options().dtype(torch::kFloat64));
  // NaN compares false: a NaN ratio is a rejection.
  const torch::Tensor accept = uniform.log() < log_ratio;
  const torch::Tensor accept_rows = accept.unsqueeze(1);
  const torch::Tensor start_losses = losses_;
  chains.copy_(torch::where(accept_rows, proposal, chains));
  losses_ = torch::where(accept, proposed.losses, losses_);
  energies_ = torch::where(accept, proposed_energies, energies_);
  drifts_ = torch::where(accept_rows, proposed_drifts, drifts_);
  accepted_.add_(accept);
  ++proposals_;
  cached_data_ = chains.data_ptr();
  cached_version_ = chains._version();
  return start_losses;
}

std::optional<std::vector<double>> Mala::AcceptanceRates() const {
  if (proposals_ == 0) return std::vector<double>();
  return PerChainValues(accepted_ / static_cast<double>(proposals_));
}

}  // namespace curvd::core

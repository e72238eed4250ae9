#include "core/samplers/sgnht.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "common/status_macros.h"

namespace curvd::core {

Sgnht::Sgnht(LocalizedPotential potential, double step_size, double diffusion,
             ChainStreams streams)
    : potential_(std::move(potential)),
      step_size_(step_size),
      diffusion_(diffusion),
      streams_(std::move(streams)) {}

absl::StatusOr<torch::Tensor> Sgnht::Step(ChainEvaluator evaluate,
                                          torch::Tensor& chains) {
  CURVD_RETURN_IF_ERROR(potential_.CheckChains(chains, momentum_));
  CURVD_ASSIGN_OR_RETURN(ChainEvaluation evaluation,
                         potential_.Evaluate(evaluate, chains));
  if (!momentum_.defined()) {
    momentum_ = streams_.Normal(chains.sizes(), chains.options());
    thermostat_ = torch::full({chains.size(0)}, diffusion_, chains.options());
  }
  const torch::Tensor drift = potential_.Drift(evaluation.gradients, chains);
  const torch::Tensor noise =
      streams_.Normal(chains.sizes(), chains.options());
  // p - epsilon xi p: addcmul_ reads each entry of p before writing it.
  momentum_.addcmul_(thermostat_.unsqueeze(1), momentum_, -step_size_)
      .add_(drift, -step_size_)
      .add_(noise, std::sqrt(2 * diffusion_ * step_size_));
  chains.add_(momentum_, step_size_);
  kinetic_temperature_ = momentum_.square().mean(1);
  thermostat_.add_(kinetic_temperature_, step_size_).sub_(step_size_);
  return evaluation.losses;
}

std::optional<std::vector<double>> Sgnht::KineticTemperatures() const {
  return PerChainValues(kinetic_temperature_);
}

}  // namespace curvd::core

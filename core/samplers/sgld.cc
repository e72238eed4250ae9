#include "core/samplers/sgld.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "common/status_macros.h"

namespace curvd::core {

Sgld::Sgld(LocalizedPotential potential, double step_size,
           ChainStreams streams)
    : potential_(std::move(potential)),
      step_size_(step_size),
      streams_(std::move(streams)) {}

absl::StatusOr<torch::Tensor> Sgld::Step(ChainEvaluator evaluate,
                                         torch::Tensor& chains) {
  CURVD_RETURN_IF_ERROR(potential_.CheckChains(chains));
  CURVD_ASSIGN_OR_RETURN(ChainEvaluation evaluation,
                         potential_.Evaluate(evaluate, chains));
  const torch::Tensor drift = potential_.Drift(evaluation.gradients, chains);
  const torch::Tensor noise =
      streams_.Normal(chains.sizes(), chains.options());
  chains.add_(drift, -step_size_ / 2).add_(noise, std::sqrt(step_size_));
  return evaluation.losses;
}

}  // namespace curvd::core

#include "core/samplers/rmsprop_sgld.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "common/status_macros.h"

namespace curvd::core {

RmspropSgld::RmspropSgld(LocalizedPotential potential, double step_size,
                         double alpha, double epsilon, ChainStreams streams)
    : potential_(std::move(potential)),
      step_size_(step_size),
      alpha_(alpha),
      epsilon_(epsilon),
      streams_(std::move(streams)) {}

absl::StatusOr<torch::Tensor> RmspropSgld::Step(ChainEvaluator evaluate,
                                                torch::Tensor& chains) {
  CURVD_RETURN_IF_ERROR(potential_.CheckChains(chains, second_moment_));
  CURVD_ASSIGN_OR_RETURN(ChainEvaluation evaluation,
                         potential_.Evaluate(evaluate, chains));
  const torch::Tensor drift = potential_.Drift(evaluation.gradients, chains);
  if (second_moment_.defined()) {
    second_moment_.mul_(alpha_).addcmul_(drift, drift, 1 - alpha_);
  } else {
    second_moment_ = drift.square();
  }
  torch::Tensor preconditioner =
      second_moment_.sqrt().add_(epsilon_).reciprocal_();
  const torch::Tensor noise =
      streams_.Normal(chains.sizes(), chains.options());
  chains.addcmul_(preconditioner, drift, -step_size_ / 2);
  // sqrt(epsilon G) xi: G's square root in place, as G is not needed again.
  chains.addcmul_(preconditioner.sqrt_(), noise, std::sqrt(step_size_));
  return evaluation.losses;
}

}  // namespace curvd::core

// The losses and gradients of C chains of parameters at once, for the samplers
// of the local learning coefficient (core/samplers/, issue 12). Internal to
// core (includes torch).
#ifndef CURVD_CORE_OBJECTIVE_CHAIN_OBJECTIVE_H_
#define CURVD_CORE_OBJECTIVE_CHAIN_OBJECTIVE_H_

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "core/objective/objective.h"

namespace curvd::core {

// Per chain: the mean loss [C] (float64) and its gradient [C, P] in the
// block's flat coordinates (vector_options()).
struct ChainEvaluation {
  torch::Tensor losses;
  torch::Tensor gradients;
};

// C points w_1..w_C of an objective's block, evaluated together: the rows of
// a [C, P] tensor, P = objective.num_parameters(); parameters outside the
// block keep the model's values. A model that can evaluate several parameter
// sets in one pass (Model::ForwardChains) runs every chain in one batched
// forward and backward; any other model runs the chains in turn through its
// own parameters, which are restored bit for bit afterwards (also when torch
// throws). Forward randomness (dropout in train mode) is drawn from the
// device's default generator as it stands: the caller seeds it. Not
// thread-safe; the objective and its model must outlive it, and no retained
// graphs may be held (it frees them).
class ChainObjective {
 public:
  explicit ChainObjective(Objective& objective);

  // Whether the chains run in one batched pass (true) or in turn.
  bool batched() const;

  // For each chain c, the mean loss over the samples `batch_indices`[c]
  // (int64 [C, B] on the parameters' device) at w_c and its gradient.
  // InvalidArgument for shapes that disagree or an index outside [0, N).
  // Losses may be NaN/Inf (a diverged chain is the caller's to detect).
  absl::StatusOr<ChainEvaluation> Minibatch(const torch::Tensor& chains,
                                            const torch::Tensor& batch_indices);

  // The same over the whole shard, in the objective's micro-batches, each
  // weighted by its size: exactly Objective::Loss and ::Gradient at w_c.
  // `with_gradients` false leaves ChainEvaluation::gradients undefined.
  absl::StatusOr<ChainEvaluation> FullShard(const torch::Tensor& chains,
                                            bool with_gradients);
};

}  // namespace curvd::core

#endif  // CURVD_CORE_OBJECTIVE_CHAIN_OBJECTIVE_H_

// The losses and gradients of C chains of parameters at once, for the samplers
// of the local learning coefficient (core/samplers/, issue 12). Internal to
// core (includes torch).
#ifndef CURVD_CORE_OBJECTIVE_CHAIN_OBJECTIVE_H_
#define CURVD_CORE_OBJECTIVE_CHAIN_OBJECTIVE_H_

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/device_graph.h"
#include "core/objective/objective.h"

namespace curvd::core {

// Per chain: the mean loss [C] (float64) and its gradient [C, P] in the
// block's flat coordinates (vector_options()), both on the parameters'
// device.
struct ChainEvaluation {
  torch::Tensor losses;
  torch::Tensor gradients;
};

// C points w_1..w_C of an objective's block, evaluated together: the rows of
// a [C, P] tensor, P = objective.num_parameters(), converted to
// vector_options(); parameters outside the block keep the model's values and
// get no gradient. A model that can evaluate several parameter sets in one
// pass (Model::SupportsChains) runs every chain in one batched forward and
// backward, on C times the activations of one chain. In Minibatch a model
// that can be copied (Model::Clone) runs each chain on a copy of its own,
// side by side on the device (RunSideBySide; C copies of the parameters).
// Any other model, and FullShard, run the chains in turn through the model's
// own block parameters, which are restored bit for bit afterwards (also when
// torch throws). Either way the model's parameters are unchanged after every
// call.
//
// On a CUDA device, Minibatch is recorded as a device graph at its first call
// with a shape of chains and indices (after a few eager warmup evaluations),
// and later calls of that shape replay it: one launch for every chain's
// forward and backward pass (docs/adr/0012-device-graphs.md). A model whose
// passes cannot be recorded runs eagerly, and graph_failure() says why.
//
// Forward randomness (dropout in train mode) is drawn from the device's
// default generator as it stands, never reseeded (unlike Objective's fixed
// per-micro-batch streams): the caller seeds it. Torch errors (out of memory,
// a model that throws) propagate as exceptions, as Objective's do. Not
// thread-safe; the objective and its model must outlive it. The objective's
// retained graphs are freed at construction, and must not be retained while
// this is used (running chains in turn moves the parameters).
class ChainObjective {
 public:
  explicit ChainObjective(Objective& objective);

  // Whether the chains run in one batched pass (true) or in turn.
  bool batched() const { return batched_; }

  // Whether Minibatch replays a device graph: one is recorded for the shapes
  // of its last call.
  bool graphed() const { return graph_ != nullptr; }

  // Why Minibatch runs eagerly on a device that has graphs (recording
  // failed); empty while it does not.
  const std::string& graph_failure() const { return graph_failure_; }

  // For each chain c, the mean loss over the samples `batch_indices`[c]
  // (int64 [C, B], B >= 1, moved to the parameters' device) at w_c and its
  // gradient: those of an objective over just those samples. InvalidArgument
  // for shapes that disagree, or for indices given on the CPU with one
  // outside [0, N). Indices already on another device are the caller's to
  // keep in range (MinibatchSchedule's are, by construction): checking them
  // would cost a device synchronisation every step, and an index out of
  // range there is a device-side assertion. Losses may be NaN/Inf (a
  // diverged chain is the caller's to detect).
  absl::StatusOr<ChainEvaluation> Minibatch(const torch::Tensor& chains,
                                            const torch::Tensor& batch_indices);

  // The same over the whole shard, in the objective's micro-batches, each
  // weighted by its size: Objective::Loss and ::Gradient at w_c (to rounding;
  // exactly the same function where the forward draws no randomness).
  // `with_gradients` false leaves ChainEvaluation::gradients undefined and
  // builds no graph. InvalidArgument for chains of the wrong shape.
  absl::StatusOr<ChainEvaluation> FullShard(const torch::Tensor& chains,
                                            bool with_gradients);

 private:
  // Minibatch recorded for one shape of chains [C, P] and indices [C, B]:
  // the buffers the graph reads, and the evaluation each replay rewrites.
  struct MinibatchGraph {
    torch::Tensor chains;
    torch::Tensor indices;
    ChainEvaluation evaluation;
    std::unique_ptr<DeviceGraph> graph;
  };

  // `chains` as a [C, P] tensor with vector_options(), or InvalidArgument.
  absl::StatusOr<torch::Tensor> CheckChains(const torch::Tensor& chains) const;
  // Minibatch's evaluation of checked chains [C, P] at device indices
  // [C, B], eagerly.
  ChainEvaluation EvaluateMinibatch(const torch::Tensor& chains,
                                    const torch::Tensor& indices);
  // The same through graph_, recorded first if it is not for these shapes;
  // eagerly, setting graph_failure_, where recording fails.
  ChainEvaluation ReplayMinibatch(const torch::Tensor& chains,
                                  const torch::Tensor& indices);
  // Batched: the losses [C] and (with_gradients) gradients [C, P] of every
  // chain on its samples, inputs [C, B, ...] and targets [C, B, ...].
  ChainEvaluation EvaluateBatched(const torch::Tensor& chains,
                                  const torch::Tensor& inputs,
                                  const torch::Tensor& targets,
                                  bool with_gradients);
  // Whether Minibatch has `chains` copies of the model (made at the first
  // call that needs them, with the model's values then: the model must not
  // change while this object is in use); false for a model that cannot be
  // copied, or when the copies did not fit in the device's memory.
  bool HasCopies(int64_t chains);
  // Writes w (a row of chains) into `block`, a model's block parameters.
  void SetBlock(const std::vector<torch::Tensor>& block, const torch::Tensor& w);
  // The loss (float64 scalar) and (with_gradients) flat gradient [P] of
  // `model` at its current parameters, `block` its block parameters, inputs
  // [B, ...] and targets [B, ...].
  ChainEvaluation EvaluateCurrent(Model& model,
                                  const std::vector<torch::Tensor>& block,
                                  const torch::Tensor& inputs,
                                  const torch::Tensor& targets,
                                  bool with_gradients);

  Objective& objective_;
  bool batched_;
  // The model's parameters, and for each the index of its part of a flat
  // vector in the block (-1 outside the block).
  std::vector<torch::Tensor> model_parameters_;
  std::vector<int> block_part_;
  // Minibatch's copies of a model that is not batched, and each copy's block
  // parameters; copies_failed_ once the model could not be copied.
  std::vector<std::unique_ptr<Model>> copies_;
  std::vector<std::vector<torch::Tensor>> copy_blocks_;
  bool copies_failed_ = false;
  bool use_graphs_;
  std::unique_ptr<MinibatchGraph> graph_;
  std::string graph_failure_;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_OBJECTIVE_CHAIN_OBJECTIVE_H_

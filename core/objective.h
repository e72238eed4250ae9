// The loss of a model over a data shard on one device, and its derivatives with
// respect to the flat parameter vector (the concatenation of
// Model::Parameters() in order, each flattened row-major). Internal to core
// (includes torch).
#ifndef CURVD_CORE_OBJECTIVE_H_
#define CURVD_CORE_OBJECTIVE_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "core/measurement.h"
#include "core/model.h"

namespace curvd::core {

// L(w) = mean over the N samples of the shard of the per-sample loss
// (cross-entropy with int64 class targets, or squared error averaged over all
// output elements). The shard is processed in micro-batches; batch b
// contributes with weight |b|/N, so every quantity is that of the whole shard,
// exactly, also when the last batch is short. Torch errors (CUDA out of memory,
// a model that throws) propagate as exceptions for the engine boundary to
// convert. Not thread-safe: it runs autograd through the model it was given.
//
// Hessian-vector products reuse work between vectors at the same point: the
// forward pass and first backward (with create_graph) of a micro-batch, its
// "graph", is built once and applied to every vector of an Hvps call by one
// more backward pass each. With retain_graphs set, the graphs outlive the call
// and every later product is one backward pass per micro-batch; they hold the
// activations of the whole shard on the device until set_retain_graphs(false).
// The parameters must not change while graphs are retained (autograd refuses
// a graph whose saved tensors were modified in place).
class Objective {
 public:
  // Checks that the shard fits `model` and wraps them. `model` must outlive the
  // objective; its parameters are made to require gradients. `inputs` [N, ...]
  // and `targets` must already be on the parameters' device, floating inputs in
  // their dtype. `micro_batch_size` 0 means all N samples at once.
  // InvalidArgument, with the shapes in the message, when N = 0, inputs and
  // targets disagree on N, the model cannot evaluate the inputs, targets do not
  // match the outputs (MSE: same shape, or [N] for outputs [N, 1];
  // cross-entropy: int64 [N] class indices in [0, C) for outputs [N, C]), or a
  // parameter or input is NaN/Inf. Graphs are not retained.
  static absl::StatusOr<Objective> Create(Model* model, torch::Tensor inputs,
                                          torch::Tensor targets,
                                          LossFunction loss,
                                          int64_t micro_batch_size);

  int64_t num_parameters() const { return num_parameters_; }
  int64_t num_samples() const { return inputs_.size(0); }
  // Samples per micro-batch actually used (N when the request said 0).
  int64_t micro_batch_size() const { return micro_batch_size_; }
  // Device and dtype of flat parameter vectors (those of the parameters).
  torch::TensorOptions vector_options() const { return vector_options_; }
  // Hessian-vector products computed so far (an Hvps call of k vectors counts
  // k).
  int64_t hvps() const { return hvps_; }

  // Keep (true) or free after each call (false, the default) the graphs of the
  // micro-batches; false also frees those kept so far.
  void set_retain_graphs(bool retain);
  bool retain_graphs() const { return retain_graphs_; }

  // The loss at the model's current parameters. InvalidArgument if it is not
  // finite.
  absl::StatusOr<double> Loss();

  // The gradient as a flat vector [num_parameters]. InvalidArgument if not
  // finite.
  absl::StatusOr<torch::Tensor> Gradient();

  // H v by double backward, H the Hessian of the loss, v a flat vector of
  // num_parameters elements with vector_options(). InvalidArgument for a vector
  // of the wrong size. The product is not checked for NaN/Inf, which would cost
  // a device synchronisation: callers check the scalars they read from it.
  absl::StatusOr<torch::Tensor> Hvp(const torch::Tensor& v);

  // H V for a block V [k, num_parameters] of k vectors as rows, returned as
  // [k, num_parameters]: each micro-batch's graph is built (or taken from the
  // retained ones) once for all k. Equal to k calls of Hvp, to rounding.
  // InvalidArgument for a block of the wrong shape; not checked for NaN/Inf.
  absl::StatusOr<torch::Tensor> Hvps(const torch::Tensor& vectors);

 private:
  struct Batch {
    int64_t start;
    int64_t count;
    double weight;  // count / N
  };
  // A micro-batch's first derivatives, built with create_graph: the gradients
  // that depend on the parameters (a loss linear in a parameter has a constant
  // gradient, which contributes nothing to H v), and which parameter each is
  // of.
  struct Graph {
    std::vector<torch::Tensor> gradients;
    std::vector<size_t> parameter_indices;
  };

  Objective(Model* model, std::vector<torch::Tensor> parameters,
            torch::Tensor inputs, torch::Tensor targets, LossFunction loss,
            int64_t micro_batch_size);

  // Calls `body` for each micro-batch, in order.
  void ForEachBatch(absl::FunctionRef<void(int64_t index, const Batch&)> body);
  // Mean loss of `batch`, differentiable in the parameters.
  torch::Tensor BatchLoss(const Batch& batch);
  Graph BuildGraph(const Batch& batch);
  // Writes (first batch) or adds weight * (the per-parameter tensors
  // flattened) to `out` [num_parameters]; undefined entries (a parameter the
  // loss does not depend on) count as zeros.
  void Accumulate(const std::vector<torch::Tensor>& per_parameter,
                  double weight, bool first, torch::Tensor out);

  Model* model_;
  std::vector<torch::Tensor> parameters_;
  std::vector<int64_t> numels_;
  torch::Tensor inputs_;
  torch::Tensor targets_;
  LossFunction loss_;
  int64_t micro_batch_size_;
  int64_t num_parameters_ = 0;
  torch::TensorOptions vector_options_;
  int64_t hvps_ = 0;
  bool retain_graphs_ = false;
  std::vector<Graph> retained_;  // one per micro-batch once built
  // Reused flat buffer for one batch's contribution when there are several.
  torch::Tensor scratch_;
  // Zeros for parameters the loss does not depend on, made when first needed.
  std::vector<torch::Tensor> zero_parts_;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_OBJECTIVE_H_

// The loss of a model over a data shard on one device, and its derivatives with
// respect to the flat parameter vector (the concatenation of
// Model::Parameters() in order, each flattened row-major). Internal to core
// (includes torch).
#ifndef CURVD_CORE_OBJECTIVE_H_
#define CURVD_CORE_OBJECTIVE_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

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
  // parameter or input is NaN/Inf.
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
  // Hessian-vector products computed so far.
  int64_t hvps() const { return hvps_; }

  // The loss at the model's current parameters. InvalidArgument if it is not
  // finite.
  absl::StatusOr<double> Loss();

  // The gradient as a flat vector [num_parameters]. InvalidArgument if not
  // finite.
  absl::StatusOr<torch::Tensor> Gradient();

  // H v by double backward, H the Hessian of the loss, v a flat vector of
  // num_parameters elements with vector_options(). InvalidArgument for a vector
  // of the wrong size or a non-finite result.
  absl::StatusOr<torch::Tensor> Hvp(const torch::Tensor& v);

 private:
  Objective(Model* model, std::vector<torch::Tensor> parameters,
            torch::Tensor inputs, torch::Tensor targets, LossFunction loss,
            int64_t micro_batch_size);

  // Mean loss of samples [start, start + count), differentiable in the
  // parameters.
  torch::Tensor BatchLoss(int64_t start, int64_t count);
  // Concatenates per-parameter tensors into a flat vector; undefined entries (a
  // parameter the loss does not depend on) count as zeros.
  torch::Tensor Flatten(const std::vector<torch::Tensor>& per_parameter) const;

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
};

}  // namespace curvd::core

#endif  // CURVD_CORE_OBJECTIVE_H_

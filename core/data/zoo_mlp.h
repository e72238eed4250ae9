// The zoo's MLP, shared by the engine and by LibTorch trainers so that a
// trainer's state dict loads into the server's model by name: parameters are
// "fc{i}.weight" and "fc{i}.bias" for i = 0 .. layers-1 (ZooLayerName and
// ZooParameterSizes in core/api/sources.h). Internal to core (includes torch).
#ifndef CURVD_CORE_DATA_ZOO_MLP_H_
#define CURVD_CORE_DATA_ZOO_MLP_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/sources.h"

namespace curvd::core {

class ZooMlpImpl : public torch::nn::Module {
 public:
  // `spec` must be valid (see ValidateZooSpec).
  explicit ZooMlpImpl(const ZooSpec& spec);
  // Flattens all but the first dimension, then linear layers with the
  // activation between them (none after the last). With `layer_inputs` and
  // `layer_outputs`, also sets them to each linear layer's input [B, d_in]
  // and output [B, d_out], in order (the last output is the result).
  torch::Tensor forward(torch::Tensor x,
                        std::vector<torch::Tensor>* layer_inputs = nullptr,
                        std::vector<torch::Tensor>* layer_outputs = nullptr);
  // The same function of C parameter sets at once (Model::ForwardChains):
  // `parameters` in parameters() order, each [C, ...shape], `x` [C, B, ...],
  // outputs [C, B, widths.back()]; one batched matmul per layer.
  torch::Tensor forward_chains(const std::vector<torch::Tensor>& parameters,
                               torch::Tensor x);
  // The linear layers, named ZooLayerName(0 .. num_layers() - 1).
  size_t num_layers() const { return layers_.size(); }

 private:
  // The activation between layers.
  torch::Tensor activate(const torch::Tensor& x) const;

  std::vector<torch::nn::Linear> layers_;
  std::string activation_;
};
TORCH_MODULE(ZooMlp);

}  // namespace curvd::core

#endif  // CURVD_CORE_DATA_ZOO_MLP_H_

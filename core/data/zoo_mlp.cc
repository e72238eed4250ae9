#include "core/data/zoo_mlp.h"

#include <torch/nn/functional/activation.h>

namespace curvd::core {

ZooMlpImpl::ZooMlpImpl(const ZooSpec& spec) : activation_(spec.activation) {
  for (size_t i = 0; i + 1 < spec.layer_widths.size(); ++i) {
    layers_.push_back(register_module(
        ZooLayerName(i),
        torch::nn::Linear(spec.layer_widths[i], spec.layer_widths[i + 1])));
  }
}

torch::Tensor ZooMlpImpl::forward(torch::Tensor x,
                                  std::vector<torch::Tensor>* layer_inputs,
                                  std::vector<torch::Tensor>* layer_outputs) {
  const bool record = layer_inputs != nullptr && layer_outputs != nullptr;
  if (record) {
    layer_inputs->clear();
    layer_outputs->clear();
  }
  x = x.flatten(1);
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (record) layer_inputs->push_back(x);
    x = layers_[i]->forward(x);
    if (record) layer_outputs->push_back(x);
    if (i + 1 < layers_.size()) x = activate(x);
  }
  return x;
}

torch::Tensor ZooMlpImpl::forward_chains(
    const std::vector<torch::Tensor>& parameters, torch::Tensor x) {
  TORCH_CHECK(parameters.size() == 2 * layers_.size(), "the zoo MLP has ",
              2 * layers_.size(), " parameters, got ", parameters.size());
  x = x.flatten(2);
  for (size_t i = 0; i < layers_.size(); ++i) {
    // x W^T + b per chain: weight [C, out, in], bias [C, out] broadcast over
    // the batch.
    x = torch::baddbmm(parameters[2 * i + 1].unsqueeze(1), x,
                       parameters[2 * i].transpose(1, 2));
    if (i + 1 < layers_.size()) x = activate(x);
  }
  return x;
}

torch::Tensor ZooMlpImpl::activate(const torch::Tensor& x) const {
  if (activation_ == "tanh") return torch::tanh(x);
  if (activation_ == "relu") return torch::relu(x);
  return torch::gelu(x);
}

}  // namespace curvd::core

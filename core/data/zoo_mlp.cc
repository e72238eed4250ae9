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

torch::Tensor ZooMlpImpl::forward(torch::Tensor x) {
  x = x.flatten(1);
  for (size_t i = 0; i < layers_.size(); ++i) {
    x = layers_[i]->forward(x);
    if (i + 1 == layers_.size()) break;
    if (activation_ == "tanh") {
      x = torch::tanh(x);
    } else if (activation_ == "relu") {
      x = torch::relu(x);
    } else {
      x = torch::gelu(x);
    }
  }
  return x;
}

}  // namespace curvd::core

#include "core/objective/parameter_restorer.h"

#include <torch/torch.h>

namespace curvd::core {

ParameterRestorer::ParameterRestorer(
    const std::vector<torch::Tensor>& parameters)
    : parameters_(parameters) {
  for (const torch::Tensor& p : parameters_) {
    saved_.push_back(p.detach().clone());
  }
}

ParameterRestorer::~ParameterRestorer() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    parameters_[i].copy_(saved_[i]);
  }
}

}  // namespace curvd::core

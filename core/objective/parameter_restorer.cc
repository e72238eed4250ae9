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
  // A destructor cannot throw, and one run while an exception unwinds must
  // not: a copy fails only when the device itself has failed, or inside a
  // broken device-graph recording, which wrote nothing to restore.
  try {
    for (size_t i = 0; i < parameters_.size(); ++i) {
      parameters_[i].copy_(saved_[i]);
    }
  } catch (const c10::Error&) {
  }
}

}  // namespace curvd::core

// Puts a model's parameters back as they were, bit for bit, whatever happens
// in between. Internal to core (includes torch).
#ifndef CURVD_CORE_OBJECTIVE_PARAMETER_RESTORER_H_
#define CURVD_CORE_OBJECTIVE_PARAMETER_RESTORER_H_

#include <torch/types.h>

#include <vector>

namespace curvd::core {

// Copies `parameters` at construction and writes the copies back into them
// when it goes out of scope, so that a torch exception in between leaves the
// model as it was. `parameters` (the model's own tensors) must outlive it.
class ParameterRestorer {
 public:
  explicit ParameterRestorer(const std::vector<torch::Tensor>& parameters);
  ~ParameterRestorer();
  ParameterRestorer(const ParameterRestorer&) = delete;
  ParameterRestorer& operator=(const ParameterRestorer&) = delete;

  // The value parameter `i` had at construction.
  const torch::Tensor& saved(size_t i) const { return saved_[i]; }

 private:
  const std::vector<torch::Tensor>& parameters_;
  std::vector<torch::Tensor> saved_;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_OBJECTIVE_PARAMETER_RESTORER_H_

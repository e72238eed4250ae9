#include "core/linear_operator.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace curvd::core {

at::Generator SeededGenerator(uint64_t seed) {
  return at::detail::createCPUGenerator(seed);
}

torch::Tensor RandomProbe(int64_t size, ProbeDistribution distribution,
                          at::Generator& generator,
                          const torch::TensorOptions& options) {
  const auto cpu = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor probe;
  if (distribution == ProbeDistribution::kGaussian) {
    probe = torch::randn({size}, generator, cpu);
  } else {
    probe = torch::randint(0, 2, {size}, generator, cpu).mul_(2).sub_(1);
  }
  return probe.to(options);
}

}  // namespace curvd::core

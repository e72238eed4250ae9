#include "core/linear_operator.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace curvd::core {

at::Generator SeededGenerator(uint64_t seed) {
  return at::detail::createCPUGenerator(seed);
}

namespace {

// A probe drawn on the CPU in float64.
torch::Tensor DrawProbe(int64_t size, ProbeDistribution distribution,
                        at::Generator& generator) {
  const auto cpu = torch::TensorOptions().dtype(torch::kFloat64);
  if (distribution == ProbeDistribution::kGaussian) {
    return torch::randn({size}, generator, cpu);
  }
  return torch::randint(0, 2, {size}, generator, cpu).mul_(2).sub_(1);
}

}  // namespace

torch::Tensor RandomProbe(int64_t size, ProbeDistribution distribution,
                          at::Generator& generator,
                          const torch::TensorOptions& options) {
  return DrawProbe(size, distribution, generator).to(options);
}

torch::Tensor RandomProbes(int64_t count, int64_t size,
                           ProbeDistribution distribution,
                           at::Generator& generator,
                           const torch::TensorOptions& options) {
  // Drawn one by one, as RandomProbe would: a single draw of count * size
  // numbers would give other vectors for the same seed.
  torch::Tensor probes = torch::empty({count, size}, torch::kFloat64);
  for (int64_t i = 0; i < count; ++i) {
    probes[i].copy_(DrawProbe(size, distribution, generator));
  }
  return probes.to(options);
}

}  // namespace curvd::core

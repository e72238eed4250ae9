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

// `count` probes as rows of a CPU float64 tensor, drawn one by one as
// RandomProbe draws them (a single draw of count * size numbers would give
// other vectors for the same seed).
torch::Tensor DrawProbesOnHost(int64_t count, int64_t size,
                               ProbeDistribution distribution,
                               at::Generator& generator) {
  torch::Tensor probes = torch::empty({count, size}, torch::kFloat64);
  for (int64_t i = 0; i < count; ++i) {
    probes[i].copy_(DrawProbe(size, distribution, generator));
  }
  return probes;
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
  return DrawProbesOnHost(count, size, distribution, generator).to(options);
}

ProbeStream::ProbeStream(int64_t size, ProbeDistribution distribution,
                         uint64_t seed, const torch::TensorOptions& options)
    : size_(size),
      distribution_(distribution),
      options_(options),
      generator_(SeededGenerator(seed)) {}

ProbeStream::~ProbeStream() {
  if (pending_.valid()) pending_.wait();
}

torch::Tensor ProbeStream::DrawOnHost(int count) {
  torch::Tensor probes =
      DrawProbesOnHost(count, size_, distribution_, generator_)
          .to(options_.dtype());
  return options_.device().is_cuda() ? probes.pin_memory() : probes;
}

torch::Tensor ProbeStream::Next(int count, int next_count) {
  // Rows already drawn, in order: what is left of the last draw, then the draw
  // in flight. A draw has advanced the generator, so its rows are never lost.
  std::vector<torch::Tensor> drawn;
  int64_t available = 0;
  if (leftover_.defined()) {
    drawn.push_back(leftover_);
    available += leftover_.size(0);
  }
  if (pending_.valid()) {
    drawn.push_back(pending_.get());
    available += drawn.back().size(0);
  }
  if (available < count) {
    drawn.push_back(DrawOnHost(count - static_cast<int>(available)));
    available = count;
  }
  torch::Tensor rows = drawn.size() == 1 ? drawn[0] : torch::cat(drawn);
  leftover_ = available > count ? rows.narrow(0, count, available - count)
                                : torch::Tensor();
  const int ahead =
      next_count - static_cast<int>(available > count ? available - count : 0);
  if (ahead > 0) {
    pending_ = std::async(std::launch::async,
                          [this, ahead] { return DrawOnHost(ahead); });
  }
  return rows.narrow(0, 0, count).to(options_.device(), /*non_blocking=*/true);
}

}  // namespace curvd::core

#include "core/linear_operator.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace curvd::core {

at::Generator SeededGenerator(uint64_t seed) {
  return at::detail::createCPUGenerator(seed);
}

namespace {

// `count` probes drawn on the CPU as rows, one row after another from the
// generator (one draw of count * size numbers would give other vectors for the
// same seed), in a raw form that is cheap to draw and to move: Rademacher
// probes as int8 {0, 1} (CPU randint draws the same numbers for every dtype
// when the range is 2), Gaussian ones as float64.
torch::Tensor DrawRawProbes(int64_t count, int64_t size,
                            ProbeDistribution distribution,
                            at::Generator& generator) {
  const bool gaussian = distribution == ProbeDistribution::kGaussian;
  torch::Tensor rows =
      torch::empty({count, size}, gaussian ? torch::kFloat64 : torch::kInt8);
  for (int64_t i = 0; i < count; ++i) {
    torch::Tensor row = rows[i];
    if (gaussian) {
      torch::randn_out(row, {size}, generator);
    } else {
      torch::randint_out(row, 0, 2, {size}, generator);
    }
  }
  return rows;
}

// Raw probes as probes with `options`, converted after the move so that only
// the raw bytes cross to the device.
torch::Tensor FinishProbes(const torch::Tensor& raw,
                           ProbeDistribution distribution,
                           const torch::TensorOptions& options,
                           bool non_blocking) {
  torch::Tensor moved = raw.to(options.device(), non_blocking);
  if (distribution == ProbeDistribution::kGaussian) {
    return moved.to(options.dtype());
  }
  return moved.to(options.dtype()).mul_(2).sub_(1);
}

}  // namespace

torch::Tensor RandomProbe(int64_t size, ProbeDistribution distribution,
                          at::Generator& generator,
                          const torch::TensorOptions& options) {
  return RandomProbes(1, size, distribution, generator, options).squeeze(0);
}

torch::Tensor RandomProbes(int64_t count, int64_t size,
                           ProbeDistribution distribution,
                           at::Generator& generator,
                           const torch::TensorOptions& options) {
  return FinishProbes(DrawRawProbes(count, size, distribution, generator),
                      distribution, options, /*non_blocking=*/false);
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
  torch::Tensor raw = DrawRawProbes(count, size_, distribution_, generator_);
  return options_.device().is_cuda() ? raw.pin_memory() : raw;
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
  return FinishProbes(rows.narrow(0, 0, count), distribution_, options_,
                      /*non_blocking=*/true);
}

}  // namespace curvd::core

// The random numbers of a measurement's chains, each chain's from a generator
// of its own: chain c draws the same numbers whether it runs alone, beside
// other chains or on another device of the same kind, so chains divided among
// devices sample as they would together on one (docs/adr/0029). Internal to
// core (includes torch).
#ifndef CURVD_CORE_SAMPLERS_CHAIN_STREAMS_H_
#define CURVD_CORE_SAMPLERS_CHAIN_STREAMS_H_

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"

namespace curvd::core {

// Copies share the streams (the generators made so far and later ones). Not
// thread-safe.
class ChainStreams {
 public:
  // The streams of chains first_chain, first_chain + 1, ... on `device`:
  // chain c's generator is seeded with Objective::ForwardSeed(seed, c), made
  // when a draw first reaches its row.
  ChainStreams(const torch::Device& device, uint64_t seed,
               int64_t first_chain = 0);

  const torch::Device& device() const { return device_; }

  // A tensor of `sizes` ([C, ...], C >= 1) and `options` (a floating dtype
  // on device()): row r standard normal (Normal) or uniform on [0, 1)
  // (Uniform) from the generator of chain first_chain + r, which advances.
  // Device work only: one kernel per row, no host synchronisation. Throws
  // (c10::Error) for options of another device.
  torch::Tensor Normal(at::IntArrayRef sizes,
                       const torch::TensorOptions& options);
  torch::Tensor Uniform(at::IntArrayRef sizes,
                        const torch::TensorOptions& options);

 private:
  // A tensor of `sizes` and `options`, each row r written by fill(row,
  // generator of row r).
  torch::Tensor Rows(
      at::IntArrayRef sizes, const torch::TensorOptions& options,
      absl::FunctionRef<void(torch::Tensor&, at::Generator&)> fill);

  torch::Device device_;
  uint64_t seed_;
  int64_t first_chain_;
  // Of rows 0, 1, ...; shared by copies.
  std::shared_ptr<std::vector<at::Generator>> generators_;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_SAMPLERS_CHAIN_STREAMS_H_

// The Metropolis-adjusted Langevin algorithm on the full-shard potential, the
// exact sampler of the local learning coefficient for small models (issue
// 12). Internal to core (includes torch).
#ifndef CURVD_CORE_SAMPLERS_MALA_H_
#define CURVD_CORE_SAMPLERS_MALA_H_

#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/samplers/chain_streams.h"
#include "core/samplers/localized_potential.h"
#include "core/samplers/sampler.h"

namespace curvd::core {

// Each step, for every row w of the chains, the evaluator giving the
// full-shard L and its gradient (a minibatch one breaks the exactness):
//   w' = w - (epsilon / 2) grad U(w) + sqrt(epsilon) xi,   xi ~ N(0, I),
// accepted (w <- w') with probability
//   min(1, exp(U(w) - U(w') + log q(w | w') - log q(w' | w))),
// q(y | x) the Gaussian of mean x - (epsilon / 2) grad U(x) and variance
// epsilon I; otherwise w stays. The chain samples exp(-U) exactly, with no
// epsilon bias. The accept/reject is per chain on the device (torch::where);
// a NaN energy or proposal is rejected. The evaluation at the current point
// is cached, so a step costs one evaluation (the proposal's) and the first
// two; the cache is refreshed when `chains` is another tensor or was written
// outside Step (its version counter moved), so it must not be an inference
// tensor. Noise: a standard normal [C, P] and a uniform [C] per step, each row from
// its chain's stream.
// Made by MakeSampler, which checks the options.
class Mala final : public Sampler {
 public:
  Mala(LocalizedPotential potential, double step_size, ChainStreams streams);

  // The losses returned are the full-shard losses of the current states.
  absl::StatusOr<torch::Tensor> Step(ChainEvaluator evaluate,
                                     torch::Tensor& chains) override;

  // Accepted proposals over the steps made, per chain.
  std::optional<std::vector<double>> AcceptanceRates() const override;

 private:
  // Evaluates `chains` into the cache unless it already holds them.
  absl::Status Refresh(ChainEvaluator evaluate, const torch::Tensor& chains);

  const LocalizedPotential potential_;
  const double step_size_;
  ChainStreams streams_;
  // The current points' losses [C], energies U [C] (float64) and drifts
  // grad U [C, P]; undefined before the first step.
  torch::Tensor losses_;
  torch::Tensor energies_;
  torch::Tensor drifts_;
  // The tensor the cache describes: its storage and version after the last
  // step's write.
  const void* cached_data_ = nullptr;
  int64_t cached_version_ = -1;
  torch::Tensor accepted_;  // [C] float64, on the chains' device
  int64_t proposals_ = 0;   // per chain: every step proposes for every chain
};

}  // namespace curvd::core

#endif  // CURVD_CORE_SAMPLERS_MALA_H_

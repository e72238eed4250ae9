// The stochastic gradient Nose-Hoover thermostat (Ding et al. 2014), a
// sampler of the local learning coefficient (issue 12). Internal to core
// (includes torch).
#ifndef CURVD_CORE_SAMPLERS_SGNHT_H_
#define CURVD_CORE_SAMPLERS_SGNHT_H_

#include <torch/types.h>

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/samplers/chain_streams.h"
#include "core/samplers/localized_potential.h"
#include "core/samplers/sampler.h"

namespace curvd::core {

// Each step, for every row w of the chains with its momentum p [P] and
// thermostat xi (a scalar per chain), d the drift at w and A the diffusion:
//   p <- p - epsilon xi p - epsilon d + sqrt(2 A epsilon) N(0, I),
//   w <- w + epsilon p,
//   xi <- xi + epsilon (p^T p / P - 1),
// the thermostat acting on every step (devinterp's computes xi and never
// applies it). p starts as N(0, I), the kinetic temperature the thermostat
// holds, and xi at A, its value when the gradient is exact; the thermostat
// then absorbs the minibatch gradient's noise by raising xi. The noise is one
// standard normal [C, P] per step (and one more on the first, for p). Made by
// MakeSampler, which checks the options.
class Sgnht final : public Sampler {
 public:
  Sgnht(LocalizedPotential potential, double step_size, double diffusion,
        ChainStreams streams);

  absl::StatusOr<torch::Tensor> Step(ChainEvaluator evaluate,
                                     torch::Tensor& chains) override;

  std::optional<std::vector<double>> KineticTemperatures() const override;

 private:
  const LocalizedPotential potential_;
  const double step_size_;
  const double diffusion_;
  ChainStreams streams_;
  // Undefined before the first step.
  torch::Tensor momentum_;             // p [C, P], the chains' dtype
  torch::Tensor thermostat_;           // xi [C], the chains' dtype
  torch::Tensor kinetic_temperature_;  // p^T p / P [C] after the last step
};

}  // namespace curvd::core

#endif  // CURVD_CORE_SAMPLERS_SGNHT_H_

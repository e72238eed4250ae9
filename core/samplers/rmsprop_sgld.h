// SGLD preconditioned by RMSProp's running second moment of the drift
// (Hitchcock and Hoogland 2025; devinterp's RMSpropSGLD), a sampler of the
// local learning coefficient (issue 12). Internal to core (includes torch).
#ifndef CURVD_CORE_SAMPLERS_RMSPROP_SGLD_H_
#define CURVD_CORE_SAMPLERS_RMSPROP_SGLD_H_

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "core/samplers/chain_streams.h"
#include "core/samplers/localized_potential.h"
#include "core/samplers/sampler.h"

namespace curvd::core {

// Each step, for every row w of the chains and its drift d (elementwise):
//   v <- alpha v + (1 - alpha) d^2,   G = 1 / (sqrt(v) + epsilon_r),
//   w <- w - (epsilon / 2) G d + sqrt(epsilon G) xi,   xi ~ N(0, I),
// v [C, P] per chain, starting at the first step's d^2 (so the first step
// is preconditioned by |d| itself; devinterp starts v at 0, which makes the
// first ~1 / (1 - alpha) steps up to 1 / sqrt(1 - alpha) times larger). Unlike
// devinterp, v follows the whole drift (localisation and prior included),
// not the loss gradient alone. The noise is a standard normal [C, P] per step,
// each row from its chain's stream. A drift of exactly 0 (a chain at a point where
// n_beta g = 0 and w = w*) gives G = 1 / epsilon_r: a small epsilon_r then
// makes a huge first step. Made by MakeSampler, which checks the options.
class RmspropSgld final : public Sampler {
 public:
  RmspropSgld(LocalizedPotential potential, double step_size, double alpha,
              double epsilon, ChainStreams streams);

  absl::StatusOr<torch::Tensor> Step(ChainEvaluator evaluate,
                                     torch::Tensor& chains) override;

 private:
  const LocalizedPotential potential_;
  const double step_size_;
  const double alpha_;
  const double epsilon_;
  ChainStreams streams_;
  torch::Tensor second_moment_;  // v [C, P]; undefined before the first step
};

}  // namespace curvd::core

#endif  // CURVD_CORE_SAMPLERS_RMSPROP_SGLD_H_

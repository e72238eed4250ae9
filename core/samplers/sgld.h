// Stochastic gradient Langevin dynamics (Welling and Teh 2011) localised at a
// checkpoint, the default sampler of the local learning coefficient (issue
// 12; the plan is docs/adr/0011-llc-plan.md). Internal to core (includes
// torch).
#ifndef CURVD_CORE_SAMPLERS_SGLD_H_
#define CURVD_CORE_SAMPLERS_SGLD_H_

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "core/samplers/chain_streams.h"
#include "core/samplers/localized_potential.h"
#include "core/samplers/sampler.h"

namespace curvd::core {

// Each step, for every row w of the chains,
//   w <- w - (epsilon / 2) d(w) + sqrt(epsilon) xi,   xi ~ N(0, I),
// d the drift at w with the evaluator's (minibatch) gradient: the update of
// ../shared/VALIDATION.md and devinterp's, so that numbers compare. The noise
// is a standard normal [C, P] per step, each row from its chain's stream. Stateless between
// steps. Made by MakeSampler, which checks the step size.
class Sgld final : public Sampler {
 public:
  Sgld(LocalizedPotential potential, double step_size, ChainStreams streams);

  absl::StatusOr<torch::Tensor> Step(ChainEvaluator evaluate,
                                     torch::Tensor& chains) override;

 private:
  const LocalizedPotential potential_;
  const double step_size_;
  ChainStreams streams_;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_SAMPLERS_SGLD_H_

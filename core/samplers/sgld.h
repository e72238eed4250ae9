// Stochastic gradient Langevin dynamics (Welling and Teh 2011) localised at a
// checkpoint, the sampler of the local learning coefficient (issue 12; the
// plan is docs/adr/0011-llc-plan.md). Internal to core (includes torch).
#ifndef CURVD_CORE_SAMPLERS_SGLD_H_
#define CURVD_CORE_SAMPLERS_SGLD_H_

#include <torch/types.h>

#include "absl/status/status.h"

namespace curvd::core {

struct SgldStepOptions {
  double step_size = 0;        // epsilon, > 0
  double n_beta = 0;           // n * beta, the inverse temperature, > 0
  double localization = 0;     // gamma, >= 0
  double prior_precision = 0;  // a Gaussian prior N(0, I / precision), >= 0
};

// One step of C chains at once, in place: for each row w of `chains` [C, P],
//   w <- w - (epsilon / 2) (n_beta g + gamma (w - w*) + precision w)
//          + sqrt(epsilon) xi,
// g the row of `gradients` [C, P] (each chain's minibatch gradient of the
// mean loss at w), w* = `center` [P], xi standard normal: the update of
// ../shared/VALIDATION.md and devinterp's, so that numbers compare. The noise
// is RandomProbes(C, P, Gaussian) from `generator` (one key per chain drawn
// on the host, the entries made on the chains' device). InvalidArgument,
// naming the option, for step_size or n_beta <= 0 or a negative
// localization or prior_precision (NaN included), or shapes that disagree;
// nothing is changed then. Thread-compatible.
absl::Status SgldStep(const SgldStepOptions& options,
                      const torch::Tensor& gradients,
                      const torch::Tensor& center, at::Generator& generator,
                      torch::Tensor& chains);

}  // namespace curvd::core

#endif  // CURVD_CORE_SAMPLERS_SGLD_H_

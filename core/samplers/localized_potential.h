// The potential every sampler of the local learning coefficient targets,
//   U(w) = n_beta L(w) + (gamma/2) ||w - w*||^2 + (precision/2) ||w||^2,
// its gradient (the drift) and the checks of the chains and evaluations they
// exchange (core/samplers/sampler.h), and the copy of per-chain numbers to
// the host. Internal to core (includes torch).
#ifndef CURVD_CORE_SAMPLERS_LOCALIZED_POTENTIAL_H_
#define CURVD_CORE_SAMPLERS_LOCALIZED_POTENTIAL_H_

#include <torch/types.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/samplers/sampler.h"

namespace curvd::core {

// Immutable after construction; the arguments are assumed valid (MakeSampler
// checks them): n_beta > 0, localization and precision >= 0, center [P].
class LocalizedPotential {
 public:
  LocalizedPotential(double n_beta, double localization, double prior_precision,
                     torch::Tensor center);

  // The rows' drift d = n_beta g + gamma (w - w*) + precision w [C, P] for
  // `gradients` [C, P] at `chains` [C, P]: a new tensor of the chains' dtype.
  torch::Tensor Drift(const torch::Tensor& gradients,
                      const torch::Tensor& chains) const;

  // U at each row [C] (float64), `losses` [C] the rows' L(w).
  torch::Tensor Energy(const torch::Tensor& losses,
                       const torch::Tensor& chains) const;

  // InvalidArgument unless `chains` is [C, P] of the center's dtype and
  // device, with as many rows as a sampler's per-chain `state` (undefined
  // before the first step, or for a sampler without one).
  absl::Status CheckChains(const torch::Tensor& chains,
                           const torch::Tensor& state = {}) const;

  // `evaluate` at `chains`: its error, or Internal for losses that are not
  // [C] or gradients that are not [C, P].
  absl::StatusOr<ChainEvaluation> Evaluate(ChainEvaluator evaluate,
                                           const torch::Tensor& chains) const;

 private:
  double n_beta_;
  double localization_;
  double prior_precision_;
  torch::Tensor center_;
  torch::Tensor scaled_center_;  // gamma w*, the drift's constant part
};

// ||x_c||^2 for each row of `x` [C, P], accumulated in float64: [C].
torch::Tensor RowSquaredNorms(const torch::Tensor& x);

// The entries of a per-chain vector [C] as doubles on the host (one
// synchronisation); empty for an undefined tensor (no step yet).
std::vector<double> PerChainValues(const torch::Tensor& values);

}  // namespace curvd::core

#endif  // CURVD_CORE_SAMPLERS_LOCALIZED_POTENTIAL_H_

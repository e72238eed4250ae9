// The samplers of the local learning coefficient behind one interface: each
// advances C chains (the rows of a [C, P] tensor) one step of its dynamics
// for the tempered, localised posterior
//   p(w) ~ exp(-U(w)),  U(w) = n_beta L(w) + (gamma/2) ||w - w*||^2
//                              + (precision/2) ||w||^2
// (core/api/llc_types.h). Internal to core (includes torch).
#ifndef CURVD_CORE_SAMPLERS_SAMPLER_H_
#define CURVD_CORE_SAMPLERS_SAMPLER_H_

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <memory>
#include <optional>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "core/api/llc_types.h"
#include "core/objective/chain_objective.h"

namespace curvd::core {

// The loss and its gradient at each row of `chains`: minibatch ones for the
// stochastic-gradient samplers, full-shard ones for MALA.
using ChainEvaluator =
    absl::FunctionRef<absl::StatusOr<ChainEvaluation>(const torch::Tensor&)>;

class Sampler {
 public:
  virtual ~Sampler() = default;

  // Advances every row of `chains` one step in place, evaluating the loss
  // through `evaluate`. Returns the losses [C] (float64) of the point each
  // chain was at when the step began (the draw's loss, as devinterp records
  // it). Errors of `evaluate` propagate; chains are unchanged then.
  virtual absl::StatusOr<torch::Tensor> Step(ChainEvaluator evaluate,
                                             torch::Tensor& chains) = 0;

  // MALA: accepted proposals over proposals, per chain [C] on the host;
  // nullopt for the other samplers.
  virtual std::optional<std::vector<double>> AcceptanceRates() const {
    return std::nullopt;
  }
  // SGNHT: the kinetic temperature p^T p / P after the last step, per chain;
  // nullopt for the other samplers.
  virtual std::optional<std::vector<double>> KineticTemperatures() const {
    return std::nullopt;
  }
};

// The sampler `options.sampler` for chains about `center` [P], with
// `n_beta` (resolved, > 0) and the noise drawn from `generator` (of the
// chains' device; it must outlive the sampler). InvalidArgument naming the
// option for values out of range (step_size <= 0, rmsprop_alpha outside
// [0, 1), ...).
absl::StatusOr<std::unique_ptr<Sampler>> MakeSampler(
    const LlcOptions& options, double n_beta, const torch::Tensor& center,
    at::Generator generator);

}  // namespace curvd::core

#endif  // CURVD_CORE_SAMPLERS_SAMPLER_H_

// The samplers of the local learning coefficient behind one interface: each
// advances C chains (the rows of a [C, P] tensor) one step of its dynamics
// for the tempered, localised posterior
//   p(w) ~ exp(-U(w)),  U(w) = n_beta L(w) + (gamma/2) ||w - w*||^2
//                              + (precision/2) ||w||^2
// (core/api/llc_types.h), whose gradient is the drift
//   d(w) = n_beta g + gamma (w - w*) + precision w.
// Chains are independent: a NaN in one row never reaches another. Each step
// draws each chain's noise from that chain's own stream (ChainStreams) on the
// chains' device and makes no host synchronisation. Internal to core (includes torch).
#ifndef CURVD_CORE_SAMPLERS_SAMPLER_H_
#define CURVD_CORE_SAMPLERS_SAMPLER_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "core/api/llc_types.h"
#include "core/objective/chain_objective.h"
#include "core/samplers/chain_streams.h"

namespace curvd::core {

// The loss and its gradient at each row of `chains`: minibatch ones for the
// stochastic-gradient samplers, full-shard ones for MALA.
using ChainEvaluator =
    absl::FunctionRef<absl::StatusOr<ChainEvaluation>(const torch::Tensor&)>;

// Not thread-safe. A sampler keeps per-chain state (a preconditioner, a
// momentum, a cached evaluation), so one sampler serves one chains tensor of
// a fixed number of rows for its whole life.
class Sampler {
 public:
  virtual ~Sampler() = default;

  // Advances every row of `chains` [C, P] (the center's dtype and device) one
  // step in place, evaluating the loss through `evaluate`. Returns the losses
  // [C] (float64) of the point each chain was at when the step began (the
  // draw's loss, as devinterp records it). InvalidArgument for chains of
  // another shape, dtype or device (or another C than the earlier steps');
  // Internal for an evaluation of the wrong shape. Errors of `evaluate`
  // propagate; chains and the sampler's state are unchanged then.
  virtual absl::StatusOr<torch::Tensor> Step(ChainEvaluator evaluate,
                                             torch::Tensor& chains) = 0;

  // MALA: accepted proposals over proposals made, per chain [C] on the host
  // (empty before the first step); nullopt for the other samplers.
  virtual std::optional<std::vector<double>> AcceptanceRates() const {
    return std::nullopt;
  }
  // SGNHT: the kinetic temperature p^T p / P after the last step, per chain
  // (empty before the first step); nullopt for the other samplers.
  virtual std::optional<std::vector<double>> KineticTemperatures() const {
    return std::nullopt;
  }
};

// The sampler `options.sampler` for chains about `center` [P] (a floating
// dtype: the chains'), with `n_beta` (resolved, > 0) and the noise drawn from
// `streams` (of the center's device, one per chain; shared, not copied).
// InvalidArgument
// naming the option for a value out of range, whichever sampler is chosen:
// step_size <= 0, n_beta <= 0, a negative localization or prior_precision,
// rmsprop_alpha outside [0, 1), rmsprop_epsilon <= 0, a negative
// sgnht_diffusion, NaN or infinity anywhere; and for a center that is not a
// floating vector or streams of another device.
absl::StatusOr<std::unique_ptr<Sampler>> MakeSampler(
    const LlcOptions& options, double n_beta, const torch::Tensor& center,
    ChainStreams streams);

}  // namespace curvd::core

#endif  // CURVD_CORE_SAMPLERS_SAMPLER_H_

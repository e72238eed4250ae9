// The local learning coefficient of a checkpoint (core/api/llc_types.h has the
// definition; docs/adr/0011-llc-plan.md the plan). Internal to core (includes
// torch).
#ifndef CURVD_CORE_MEASUREMENTS_LLC_H_
#define CURVD_CORE_MEASUREMENTS_LLC_H_

#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/llc_types.h"
#include "core/objective/objective.h"

namespace curvd::core {

// Runs options.chains chains of options.sampler from the objective's current
// block parameters w* and returns lambda_hat with its diagnostics. L(w*) is
// objective.Loss() (the whole shard, the objective's mode). n_beta is resolved
// from options' convention with n = objective.num_samples() and the batch
// size min(options.batch_size, n); the values used are in the result. The
// model's parameters are w* again on return, bit for bit, also on error or
// cancellation (checked between steps: CancelledError). A diverged chain is a
// result (DivergencePolicy kDropChain) or FailedPrecondition naming the
// chain, the step and the loss (kFail, or every chain diverged).
// InvalidArgument for options out of range.
absl::StatusOr<LlcResult> MeasureLlc(Objective& objective,
                                     const LlcOptions& options,
                                     const Progress& progress);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_LLC_H_

// The local learning coefficient of a checkpoint (core/api/llc_types.h has the
// definition; docs/adr/0011-llc-plan.md the plan). Internal to core (includes
// torch).
#ifndef CURVD_CORE_MEASUREMENTS_LLC_H_
#define CURVD_CORE_MEASUREMENTS_LLC_H_

#include <cstdint>
#include <vector>

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

// MeasureLlc with the chains divided among `objectives` (at least one), each
// over the same shard and block with the same parameters, typically on
// devices of their own: contiguous groups as ChainGroupSizes gives them, the
// first group on objectives[0], which also gives L(w*) and n. Every chain
// draws its noise and its minibatches from streams of its own (the seed and
// its index decide them), so the result equals MeasureLlc's on objectives[0]
// alone to rounding where the devices are of one kind (the generators of the
// CPU and of CUDA differ), except for forward randomness (dropout in train
// mode), which each device's default generator draws (seeded, as the first's,
// by a whole-shard loss, so that a seed repeats its run). Each step is
// launched on every device in turn, that device current, without waiting
// between the divergence checks; result.groups says where the chains ran.
// Errors as MeasureLlc's, and InvalidArgument for objectives that disagree on
// the number of samples or parameters, or (those given chains) on w*.
absl::StatusOr<LlcResult> MeasureLlc(const std::vector<Objective*>& objectives,
                                     const LlcOptions& options,
                                     const Progress& progress);

// How many of `chains` chains each of `devices` devices runs: min(chains,
// devices) groups (at least one) as even as the count allows, the first ones
// one larger.
std::vector<int64_t> ChainGroupSizes(int64_t chains, int64_t devices);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_LLC_H_

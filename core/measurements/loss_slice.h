// The loss along a line through the current parameters, w + t v, for a unit
// direction v: the top eigenvector of the curvature operator or a random one
// (LossSliceOptions in measurement.h). Internal to core (includes torch).
#ifndef CURVD_CORE_MEASUREMENTS_LOSS_SLICE_H_
#define CURVD_CORE_MEASUREMENTS_LOSS_SLICE_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/measurement.h"
#include "core/objective/linear_operator.h"
#include "core/objective/objective.h"

namespace curvd::core {

// A unit direction and how it was chosen: LossSliceResult's direction,
// eigenvalue and residual_norm, the rest left for SliceLoss.
struct SliceDirectionVector {
  torch::Tensor v;
  LossSliceResult described;
};

// `points` values evenly spaced on [t_min, t_max], both ends included; one
// point is t_min. Empty for points < 1. Thread-safe.
std::vector<double> SliceGrid(const LossSliceOptions& options);

// The top eigenvector `v` (unit, as Lanczos returns it) with its eigenpair,
// described as the top eigenvector of `op_name` ("the Hessian", "the GGN")
// found by `source` ("a Lanczos run of the loss slice", ...).
SliceDirectionVector TopEigenvectorDirection(torch::Tensor v,
                                             const Eigenpair& pair,
                                             const std::string& op_name,
                                             const std::string& source);

// A Gaussian vector drawn by RandomProbe from SeededGenerator(seed), so that a
// seed gives the same direction on every device, scaled to unit norm.
SliceDirectionVector RandomDirection(int64_t size,
                                     const torch::TensorOptions& options,
                                     uint64_t seed);

// Fills direction.described with v^T H v (one product of `op`) and the loss
// at w + t v over SliceGrid(options), by objective.LossAlong, which frees the
// objective's retained graphs: run it after the other methods of a plan.
// Cancellation is polled before the product and before the losses: Cancelled
// if progress.cancelled() returns true. InvalidArgument for a grid of no
// points, a non-finite v^T H v or loss; errors of `op` and of LossAlong as
// they are. Thread-compatible.
absl::StatusOr<LossSliceResult> SliceLoss(Objective& objective,
                                          const LinearOperator& op,
                                          const LossSliceOptions& options,
                                          SliceDirectionVector direction,
                                          const Progress& progress);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_LOSS_SLICE_H_

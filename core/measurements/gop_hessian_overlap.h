// The overlap of a GOP's top eigenspace with the Hessian's of the same block
// (GopOptions::hessian_overlap_k, docs/adr/0013). Internal to core (includes
// torch).
#ifndef CURVD_CORE_MEASUREMENTS_GOP_HESSIAN_OVERLAP_H_
#define CURVD_CORE_MEASUREMENTS_GOP_HESSIAN_OVERLAP_H_

#include <torch/types.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/gop_types.h"
#include "core/objective/objective.h"

namespace curvd::core {

// The Hessian's top k eigenvectors of `objective`'s block by Lanczos
// (lanczos.h) on Objective::Hvp in the objective's dtype, LanczosOptions'
// defaults (the sharpness kind's: relative tolerance 1e-6, 100 steps) with
// top_k = k and `seed`, compared with `gop_vectors` [a, M] (orthonormal rows,
// float64, on the parameters' device; a may be 0) by ComputeSubspaceOverlap
// (core/linalg/subspace_overlap.h). Requires 1 <= k. Errors of Lanczos
// (Cancelled, a non-finite product) as it returns them. Thread-compatible.
absl::StatusOr<GopHessianOverlap> MeasureGopHessianOverlap(
    Objective& objective, int k, uint64_t seed,
    const torch::Tensor& gop_vectors, const Progress& progress);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_GOP_HESSIAN_OVERLAP_H_

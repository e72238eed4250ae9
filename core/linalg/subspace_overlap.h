// How far two subspaces of R^M agree: the squared Frobenius norm of U^T V and
// the principal angles. Internal to core (includes torch).
#ifndef CURVD_CORE_LINALG_SUBSPACE_OVERLAP_H_
#define CURVD_CORE_LINALG_SUBSPACE_OVERLAP_H_

#include <torch/types.h>

#include <vector>

namespace curvd::core {

struct SubspaceOverlap {
  // ||U^T V||_F^2 / min(a, b): in [0, 1], 1 when the smaller subspace lies in
  // the other, 0 when they are orthogonal; NaN when a or b is 0.
  double overlap = 0;
  // The singular values of U^T V, the cosines of the principal angles,
  // descending, min(a, b) of them.
  std::vector<double> cosines;
};

// For u [a, M] and v [b, M] whose rows are orthonormal bases (not checked),
// float64 on any one device; computed in float64 there, one transfer.
SubspaceOverlap ComputeSubspaceOverlap(const torch::Tensor& u,
                                       const torch::Tensor& v);

}  // namespace curvd::core

#endif  // CURVD_CORE_LINALG_SUBSPACE_OVERLAP_H_

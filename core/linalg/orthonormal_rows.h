// Orthonormal bases of blocks of vectors held as the rows of a matrix, in
// float64: the sketches of Hutch++ and of the adaptive trace. Internal to core
// (includes torch).
#ifndef CURVD_CORE_LINALG_ORTHONORMAL_ROWS_H_
#define CURVD_CORE_LINALG_ORTHONORMAL_ROWS_H_

#include <torch/types.h>

namespace curvd::core {

// For `block` [m, n] and `basis` [k, n] (orthonormal rows; undefined for none),
// both float64 on one device, m + k <= n: m orthonormal rows, orthogonal to
// `basis`, that span the rows of `block` projected off `basis` where those have
// rank m; where they have less, the rows are still orthonormal and orthogonal
// to `basis`, the extra ones directions outside `block`. float64, on `block`'s
// device; one host synchronisation in the common case.
torch::Tensor OrthonormalRows(const torch::Tensor& block,
                              const torch::Tensor& basis = {});

}  // namespace curvd::core

#endif  // CURVD_CORE_LINALG_ORTHONORMAL_ROWS_H_

// Eigenvalues of a symmetric tridiagonal matrix, with the last component of
// each unit eigenvector: what Lanczos needs for Ritz values and their
// residuals. Plain float64 on the CPU, no torch.
#ifndef CURVD_CORE_LINALG_TRIDIAGONAL_EIGEN_H_
#define CURVD_CORE_LINALG_TRIDIAGONAL_EIGEN_H_

#include <vector>

#include "absl/status/statusor.h"

namespace curvd::core {

struct TridiagonalEigen {
  std::vector<double> values;  // ascending
  std::vector<double>
      last_components;  // last entry of the eigenvector of values[i]
};

// Solves T s = theta s for the m x m matrix with `diagonal` (m entries) and
// `off_diagonal` (m - 1 entries) by the implicit QL method with Wilkinson
// shifts, accumulating only the last row of the eigenvector matrix (O(m^2)
// work). InvalidArgument for inconsistent sizes or non-finite entries, Internal
// if QL fails to converge (30 sweeps per eigenvalue). Thread-safe.
absl::StatusOr<TridiagonalEigen> SolveTridiagonal(
    const std::vector<double>& diagonal,
    const std::vector<double>& off_diagonal);

}  // namespace curvd::core

#endif  // CURVD_CORE_LINALG_TRIDIAGONAL_EIGEN_H_

#include "core/linalg/tridiagonal_eigen.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace curvd::core {

// The QL iteration of EISPACK's tql2 (as in JAMA), with the eigenvector update
// restricted to the last row: each plane rotation mixes two columns, so one row
// of the eigenvector matrix can be tracked on its own.
absl::StatusOr<TridiagonalEigen> SolveTridiagonal(
    const std::vector<double>& diagonal,
    const std::vector<double>& off_diagonal) {
  const int n = static_cast<int>(diagonal.size());
  if (n == 0 || static_cast<int>(off_diagonal.size()) != n - 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tridiagonal matrix with ", n, " diagonal and ",
                     off_diagonal.size(), " off-diagonal entries"));
  }
  for (double x : diagonal) {
    if (!std::isfinite(x))
      return absl::InvalidArgumentError("non-finite diagonal");
  }
  for (double x : off_diagonal) {
    if (!std::isfinite(x))
      return absl::InvalidArgumentError("non-finite off-diagonal");
  }
  std::vector<double> d = diagonal;
  std::vector<double> e(n, 0.0);  // e[i] couples i and i + 1; e[n - 1] = 0
  std::copy(off_diagonal.begin(), off_diagonal.end(), e.begin());
  std::vector<double> z(n, 0.0);  // last row of the eigenvector matrix
  z[n - 1] = 1.0;

  const double eps = std::numeric_limits<double>::epsilon();
  double f = 0.0;
  double tst1 = 0.0;
  for (int l = 0; l < n; ++l) {
    tst1 = std::max(tst1, std::abs(d[l]) + std::abs(e[l]));
    int m = l;
    while (m < n - 1 && std::abs(e[m]) > eps * tst1) ++m;
    if (m > l) {
      int sweeps = 0;
      do {
        if (++sweeps > 30) {
          return absl::InternalError(absl::StrCat(
              "tridiagonal QL did not converge for eigenvalue ", l));
        }
        double g = d[l];
        double p = (d[l + 1] - g) / (2.0 * e[l]);
        double r = std::hypot(p, 1.0);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const double dl1 = d[l + 1];
        double h = g - d[l];
        for (int i = l + 2; i < n; ++i) d[i] -= h;
        f += h;

        p = d[m];
        double c = 1.0, c2 = 1.0, c3 = 1.0;
        const double el1 = e[l + 1];
        double s = 0.0, s2 = 0.0;
        for (int i = m - 1; i >= l; --i) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = std::hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          h = z[i + 1];
          z[i + 1] = s * z[i] + c * h;
          z[i] = c * z[i] - s * h;
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (std::abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0.0;
  }

  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&d](int a, int b) { return d[a] < d[b]; });
  TridiagonalEigen result;
  result.values.reserve(n);
  result.last_components.reserve(n);
  for (int i : order) {
    result.values.push_back(d[i]);
    result.last_components.push_back(z[i]);
  }
  return result;
}

}  // namespace curvd::core

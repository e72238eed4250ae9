// Explicit matrices as operators for the spectral tests: fast, and with every
// answer known in closed form.
#ifndef CURVD_TESTS_CORE_TEST_MATRICES_H_
#define CURVD_TESTS_CORE_TEST_MATRICES_H_

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <tuple>
#include <vector>

#include "core/objective/linear_operator.h"
#include "tests/core/toy_models.h"

namespace curvd::core::testing {

// Q diag(eigenvalues) Q^T with a seeded random orthogonal Q, float64 on the
// CPU.
inline torch::Tensor MatrixWithSpectrum(const std::vector<double>& eigenvalues,
                                        uint64_t seed) {
  const int64_t n = static_cast<int64_t>(eigenvalues.size());
  const torch::Tensor q =
      std::get<0>(torch::linalg_qr(SeededRandn({n, n}, seed)));
  const torch::Tensor d = torch::tensor(eigenvalues, torch::kFloat64);
  const torch::Tensor a = q.mm(torch::diag(d)).mm(q.t());
  return (a + a.t()) / 2;
}

// op(x) = a x; if `products` is not null it counts the calls.
inline LinearOperator MatrixOperator(const torch::Tensor& a,
                                     std::shared_ptr<int64_t> products = {}) {
  return
      [a, products](const torch::Tensor& v) -> absl::StatusOr<torch::Tensor> {
        if (products) ++*products;
        return a.mv(v);
      };
}

// op(x) = value * x, for a `value` of Inf or NaN: every product is non-finite,
// as a Hessian at a diverged point would give.
inline LinearOperator NonFiniteOperator(double value) {
  return [value](const torch::Tensor& v) -> absl::StatusOr<torch::Tensor> {
    return v * value;
  };
}

// Trapezoid rule of y on the grid x.
inline double Trapezoid(const std::vector<double>& x,
                        const std::vector<double>& y) {
  double sum = 0;
  for (size_t i = 1; i < x.size(); ++i) {
    sum += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2;
  }
  return sum;
}

}  // namespace curvd::core::testing

#endif  // CURVD_TESTS_CORE_TEST_MATRICES_H_

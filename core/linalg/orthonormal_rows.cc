#include "core/linalg/orthonormal_rows.h"

#include <torch/torch.h>

#include <tuple>

namespace curvd::core {
namespace {

// How far from orthonormal (and from orthogonal to the basis) the rows may be:
// CholeskyQR2 reaches a small multiple of eps (growing slowly with the
// length: 7e-15 at 4e6) where the block's condition number is below
// eps^(-1/2) (Yamamoto et al. 2015); beyond that it is not trusted.
constexpr double kTolerance = 1e-12;

// `x` less its components along the rows of `basis`, twice ("twice is
// enough", Giraud et al. 2005), so that the result is orthogonal to them to
// rounding even where `x` lay almost in their span.
torch::Tensor ProjectedOff(torch::Tensor x, const torch::Tensor& basis) {
  if (!basis.defined() || basis.size(0) == 0) return x;
  for (int pass = 0; pass < 2; ++pass) {
    x = x - x.mm(basis.t()).mm(basis);
  }
  return x;
}

// Householder QR, twice, projecting off `basis` before each: orthonormal and
// orthogonal to the basis whatever the rank, at the price of a QR of a tall
// matrix (slow on a GPU: a sequence of column reductions).
torch::Tensor HouseholderRows(torch::Tensor y, const torch::Tensor& basis) {
  for (int round = 0; round < 2; ++round) {
    y = std::get<0>(torch::linalg_qr(ProjectedOff(y, basis).t(), "reduced")).t();
  }
  return y.contiguous();
}

}  // namespace

// CholeskyQR2: two rounds of Y <- L^{-1} Y with L L^T = Y Y^T, each after
// projecting off the basis. Its work is two skinny matrix products and an
// m x m Cholesky per round, where a Householder QR of the n x m transpose is
// a chain of m column reductions of length n. Every row of the result is a
// combination of the projected block's rows (and, to rounding, of the
// basis's, which the check bounds), so m orthonormal rows span it. A Cholesky
// that met a non-positive pivot (a rank-deficient or badly conditioned
// block), or rows that fail the check, take the Householder path; the pivots'
// status and the check are read back together.
torch::Tensor OrthonormalRows(const torch::Tensor& block,
                              const torch::Tensor& basis) {
  if (block.size(0) == 0) return block;
  torch::Tensor y = block;
  torch::Tensor failed_pivots = torch::zeros({}, block.options());
  for (int round = 0; round < 2; ++round) {
    y = ProjectedOff(y, basis);
    auto [factor, info] = torch::linalg_cholesky_ex(y.mm(y.t()));
    failed_pivots = failed_pivots + info.to(block.options());
    y = torch::linalg_solve_triangular(factor, y, /*upper=*/false);
  }
  torch::Tensor departure =
      (y.mm(y.t()) - torch::eye(y.size(0), y.options())).abs().max();
  if (basis.defined() && basis.size(0) > 0) {
    departure = torch::maximum(departure, basis.mm(y.t()).abs().max());
  }
  const torch::Tensor both =
      torch::stack({departure, failed_pivots}).to(torch::kCPU);
  // NaN fails the comparison too.
  if (both[0].item<double>() <= kTolerance && both[1].item<double>() == 0) {
    return y.contiguous();
  }
  return HouseholderRows(block, basis);
}

}  // namespace curvd::core

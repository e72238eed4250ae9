#include "core/linalg/orthonormal_rows.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;

class OrthonormalRowsTest : public DeviceTest {
 protected:
  torch::Tensor Random(int64_t rows, int64_t columns, uint64_t seed) {
    torch::manual_seed(seed);
    return torch::randn({rows, columns}, torch::kFloat64).to(device());
  }
  // max |Y Y^T - I|.
  static double Departure(const torch::Tensor& y) {
    return (y.mm(y.t()) - torch::eye(y.size(0), y.options()))
        .abs()
        .max()
        .item<double>();
  }
  // max |x - x Y^T Y| / max |x|: how much of x lies outside the rows of y.
  static double Outside(const torch::Tensor& x, const torch::Tensor& y) {
    return (x - x.mm(y.t()).mm(y)).abs().max().item<double>() /
           x.abs().max().item<double>();
  }
  // y: as many orthonormal rows as `block`, orthogonal to `basis`, spanning
  // what of `block` lies off it.
  static void ExpectABasisOfTheRest(const torch::Tensor& y,
                                    const torch::Tensor& block,
                                    const torch::Tensor& basis) {
    ASSERT_EQ(y.sizes(), block.sizes());
    EXPECT_LT(Departure(y), 1e-13);
    EXPECT_LT(basis.mm(y.t()).abs().max().item<double>(), 1e-13);
    const torch::Tensor rest = block - block.mm(basis.t()).mm(basis);
    EXPECT_LT(Outside(rest, y), 1e-10);
  }
};

TEST_P(OrthonormalRowsTest, SpansAFullRankBlock) {
  const torch::Tensor block = Random(8, 300, 1);
  const torch::Tensor y = OrthonormalRows(block);
  ASSERT_EQ(y.sizes(), block.sizes());
  EXPECT_EQ(y.scalar_type(), torch::kFloat64);
  EXPECT_EQ(y.device(), device());
  EXPECT_LT(Departure(y), 1e-13);
  EXPECT_LT(Outside(block, y), 1e-12);
}

TEST_P(OrthonormalRowsTest, IsOrthogonalToTheBasisAndSpansTheRest) {
  const torch::Tensor basis = OrthonormalRows(Random(5, 300, 2));
  // Mostly along the basis: what is left is a small part of each row.
  const torch::Tensor block =
      Random(6, 5, 3).mm(basis) * 1e3 + Random(6, 300, 4);
  ExpectABasisOfTheRest(OrthonormalRows(block, basis), block, basis);
}

TEST_P(OrthonormalRowsTest, ARankDeficientBlockStillGivesOrthonormalRows) {
  const torch::Tensor basis = OrthonormalRows(Random(3, 200, 5));
  torch::Tensor block = Random(4, 200, 6);
  block[3] = block[0] - 2 * block[1];  // rank 3
  ExpectABasisOfTheRest(OrthonormalRows(block, basis), block, basis);
}

TEST_P(OrthonormalRowsTest, ABadlyConditionedBlockIsSpannedToRounding) {
  // Rows of norms 1 down to 1e-12: a condition number of 1e12.
  torch::Tensor block = Random(6, 250, 7);
  for (int64_t i = 0; i < 6; ++i) block[i] *= std::pow(1e-12, i / 5.0);
  const torch::Tensor y = OrthonormalRows(block);
  EXPECT_LT(Departure(y), 1e-13);
  EXPECT_LT(Outside(block, y), 1e-12);
}

TEST_P(OrthonormalRowsTest, NearlyCollinearRowsAreSpannedToRounding) {
  // One direction and tiny departures from it (1e-8 down to 1e-14): a Gram
  // matrix Cholesky cannot factor, the Householder path's case.
  const torch::Tensor basis = OrthonormalRows(Random(2, 250, 9));
  const torch::Tensor direction = Random(1, 250, 10);
  torch::Tensor block = direction.repeat({6, 1});
  const torch::Tensor noise = Random(6, 250, 11);
  for (int64_t i = 1; i < 6; ++i) {
    block[i] += noise[i] * std::pow(10.0, -8.0 - 1.5 * (i - 1));
  }
  ExpectABasisOfTheRest(OrthonormalRows(block, basis), block, basis);
}

TEST_P(OrthonormalRowsTest, AnEmptyBasisIsNone) {
  const torch::Tensor block = Random(4, 50, 12);
  const torch::Tensor y = OrthonormalRows(block, Random(0, 50, 13));
  EXPECT_LT(Departure(y), 1e-13);
  EXPECT_LT(Outside(block, y), 1e-12);
}

TEST_P(OrthonormalRowsTest, AnEmptyBlockIsEmpty) {
  EXPECT_EQ(OrthonormalRows(Random(0, 10, 8)).size(0), 0);
}

CURVD_INSTANTIATE_DEVICE_TEST(OrthonormalRowsTest);

}  // namespace
}  // namespace curvd::core

#include "core/measurements/exact_hessian.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/objective/objective.h"
#include "tests/core/test_matrices.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::ExplicitMatrix;
using ::curvd::core::testing::LinearModel;
using ::curvd::core::testing::MatrixOperator;
using ::curvd::core::testing::MatrixWithSpectrum;
using ::curvd::core::testing::SeededRandn;

ExactHessianOptions Cap(int64_t max_parameters, int block_size) {
  ExactHessianOptions options;
  options.max_parameters = max_parameters;
  options.block_size = block_size;
  return options;
}

// P = 60, rank 17: eigenvalues spread over two decades, both signs, the rest 0.
std::vector<double> RankSeventeen() {
  std::vector<double> spectrum(60, 0.0);
  for (int i = 0; i < 17; ++i) {
    spectrum[i] = (i % 4 == 0 ? -1 : 1) * std::pow(10.0, -1.0 + i / 8.0);
  }
  return spectrum;
}

class ExactHessianTest : public DeviceTest {};

TEST_P(ExactHessianTest, RankOfAMatrixBuiltToHaveRankR) {
  const torch::Tensor a = MatrixWithSpectrum(RankSeventeen(), 1);
  const torch::Tensor exact =
      std::get<0>(torch::sort(torch::tensor(RankSeventeen(), torch::kFloat64)));
  auto products = std::make_shared<int64_t>(0);
  auto result = ExactHessian(MatrixOperator(a.to(device()), products), 60,
                             options(), Cap(100, 16), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rank, 17);
  EXPECT_EQ(result->positive, 12);
  EXPECT_EQ(result->negative, 5);
  EXPECT_EQ(result->num_parameters, 60);
  EXPECT_EQ(result->hvps, 60);
  EXPECT_EQ(*products, 60);
  ASSERT_EQ(result->eigenvalues.size(), 60);
  for (int i = 0; i < 60; ++i) {
    EXPECT_NEAR(result->eigenvalues[i], exact[i].item<double>(), 1e-13);
  }
  const double largest = std::pow(10.0, 1.0);
  EXPECT_DOUBLE_EQ(result->rank_tolerance,
                   largest * 60 * std::numeric_limits<double>::epsilon());
  EXPECT_NE(result->rank_rule.find("max|lambda| * P * eps"), std::string::npos)
      << result->rank_rule;
  EXPECT_NE(result->rank_rule.find("float64"), std::string::npos);
  EXPECT_TRUE(result->matrix.empty());

  // float32 products: rounding of order 1e-7 relative, far below the float32
  // rule's tolerance and far above the smallest non-zero eigenvalue's scale.
  auto single =
      ExactHessian(MatrixOperator(a.to(device(), torch::kFloat32)), 60,
                   options(torch::kFloat32), Cap(100, 16), Progress());
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->rank, 17);
  EXPECT_NE(single->rank_rule.find("float32"), std::string::npos);
}

TEST_P(ExactHessianTest, ConditionNumberAndLogDeterminantInClosedForm) {
  std::vector<double> spectrum = {5, 2, 0.5, -1, -3};
  spectrum.resize(20, 0.0);
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 2);
  auto result = ExactHessian(MatrixOperator(a.to(device())), 20, options(),
                             Cap(20, 256), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rank, 5);
  EXPECT_EQ(result->positive, 3);
  EXPECT_EQ(result->negative, 2);
  // Over the non-zero part: max |lambda| = 5, min |lambda| = 0.5.
  EXPECT_NEAR(result->condition_number, 10, 1e-12);
  // log 5 + log 2 + log 0.5 = log 5.
  EXPECT_NEAR(result->log_determinant_positive, std::log(5.0), 1e-13);
  EXPECT_LT(result->asymmetry, 1e-15);
}

TEST_P(ExactHessianTest, BlocksSymmetriseAndReturnTheMatrix) {
  // An operator with a small antisymmetric part: the result is the symmetric
  // part, and the asymmetry it had is reported. 1100 > one symmetrisation
  // tile, and blocks of 97 leave a short last block.
  constexpr int64_t kSize = 1100;
  const torch::Tensor s = SeededRandn({kSize, kSize}, 3);
  const torch::Tensor symmetric = (s + s.t()) / 2;
  const torch::Tensor skew = 1e-9 * (s - s.t()) / 2;
  const torch::Tensor op_matrix = symmetric + skew;
  ExactHessianOptions exact = Cap(kSize, 97);
  exact.return_matrix = true;
  exact.max_matrix_parameters = kSize;
  auto result = ExactHessian(MatrixOperator(op_matrix.to(device())), kSize,
                             options(), exact, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->matrix.size(), kSize * kSize);
  const torch::Tensor returned =
      torch::from_blob(result->matrix.data(), {kSize, kSize}, torch::kFloat64);
  EXPECT_TRUE(torch::equal(returned, returned.t()));
  // Rows are op(e_i) = column i of op_matrix, so the matrix read is
  // op_matrix^T.
  EXPECT_LT((returned - symmetric).abs().max().item<double>(), 1e-12);
  const double expected_asymmetry =
      (op_matrix - op_matrix.t()).abs().max().item<double>() /
      op_matrix.abs().max().item<double>();
  EXPECT_NEAR(result->asymmetry, expected_asymmetry, 1e-6 * expected_asymmetry);
  const torch::Tensor exact_values = torch::linalg_eigvalsh(symmetric);
  EXPECT_NEAR(result->eigenvalues.front(), exact_values[0].item<double>(),
              1e-9);
  EXPECT_NEAR(result->eigenvalues.back(), exact_values[-1].item<double>(),
              1e-9);
}

TEST_P(ExactHessianTest, LinearMseWithFewerSamplesThanInputs) {
  // H = 2/(N C) (I_C (x) X^T X) with X of rank N < D: rank C N.
  constexpr int64_t kN = 3, kD = 8, kC = 2;
  LinearModel model(kD, kC, /*seed=*/4);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({kN, kD}, 5);
  auto objective = Objective::Create(&model, x.to(device()),
                                     SeededRandn({kN, kC}, 6).to(device()),
                                     LossFunction::kMse, 0);
  ASSERT_TRUE(objective.ok()) << objective.status();
  const LinearOperator hvp = [&](const torch::Tensor& v) {
    return objective->Hvp(v);
  };
  auto result = ExactHessian(hvp, kC * kD, options(), Cap(1000, 5), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rank, kC * kN);
  EXPECT_EQ(result->positive, kC * kN);
  EXPECT_EQ(result->negative, 0);
  const torch::Tensor gram_values =
      torch::linalg_eigvalsh(x.t().mm(x)) * (2.0 / (kN * kC));
  // Each eigenvalue of X^T X, scaled, C times; the top ones are non-zero.
  for (int64_t i = 0; i < kN; ++i) {
    const double want = gram_values[kD - 1 - i].item<double>();
    for (int64_t c = 0; c < kC; ++c) {
      EXPECT_NEAR(result->eigenvalues[kC * kD - 1 - kC * i - c], want,
                  1e-12 * want);
    }
  }
  double logdet = 0;
  for (int64_t i = 0; i < kN; ++i) {
    logdet += kC * std::log(gram_values[kD - 1 - i].item<double>());
  }
  EXPECT_NEAR(result->log_determinant_positive, logdet, 1e-10);
  EXPECT_NEAR(
      result->condition_number,
      gram_values[kD - 1].item<double>() / gram_values[kD - kN].item<double>(),
      1e-9);
}

TEST_P(ExactHessianTest, CapsAndBadOptions) {
  const LinearOperator op =
      MatrixOperator(torch::eye(30, torch::kFloat64).to(device()));
  auto over = ExactHessian(op, 30, options(), Cap(29, 8), Progress());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(over.status().message()).find("cap of 29"),
            std::string::npos)
      << over.status();
  ExactHessianOptions matrix_over = Cap(30, 8);
  matrix_over.return_matrix = true;
  matrix_over.max_matrix_parameters = 20;
  EXPECT_EQ(
      ExactHessian(op, 30, options(), matrix_over, Progress()).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ExactHessian(op, 30, options(), Cap(30, 0), Progress()).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ExactHessian(op, 0, options(), Cap(30, 8), Progress()).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_P(ExactHessianTest, ZeroOperatorHasRankZero) {
  auto result = ExactHessian(MatrixOperator(torch::zeros({12, 12}, options())),
                             12, options(), Cap(12, 5), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rank, 0);
  EXPECT_EQ(result->rank_tolerance, 0);
  EXPECT_TRUE(std::isnan(result->condition_number));
  EXPECT_EQ(result->log_determinant_positive, 0);
  EXPECT_EQ(result->asymmetry, 0);
}

TEST_P(ExactHessianTest, ProgressCancellationAndOperatorErrors) {
  const LinearOperator op =
      MatrixOperator(MatrixWithSpectrum(RankSeventeen(), 7).to(device()));
  std::vector<double> fractions;
  Progress reporting;
  reporting.report = [&fractions](double fraction, const std::string&) {
    fractions.push_back(fraction);
  };
  ASSERT_TRUE(ExactHessian(op, 60, options(), Cap(60, 16), reporting).ok());
  ASSERT_EQ(fractions.size(), 61);  // every column, then eigvalsh
  EXPECT_EQ(fractions.front(), 0);
  EXPECT_EQ(fractions.back(), 1);

  int polls = 0;
  Progress cancelling;
  cancelling.cancelled = [&polls] { return ++polls > 20; };
  EXPECT_EQ(
      ExactHessian(op, 60, options(), Cap(60, 16), cancelling).status().code(),
      absl::StatusCode::kCancelled);
  EXPECT_EQ(polls, 21);

  const LinearOperator nan_op = testing::NonFiniteOperator(
      std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(ExactHessian(nan_op, 10, options(), Cap(60, 4), Progress())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const LinearOperator failing =
      [](const torch::Tensor&) -> absl::StatusOr<torch::Tensor> {
    return absl::ResourceExhaustedError("out of memory: test");
  };
  EXPECT_EQ(ExactHessian(failing, 10, options(), Cap(60, 4), Progress())
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
}

CURVD_INSTANTIATE_DEVICE_TEST(ExactHessianTest);

}  // namespace
}  // namespace curvd::core

#include "core/estimators/power_iteration.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "tests/core/test_matrices.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::MatrixOperator;
using ::curvd::core::testing::MatrixWithSpectrum;

PowerIterationOptions TopK(int k, int max_iterations, double tolerance) {
  PowerIterationOptions options;
  options.top_k = k;
  options.max_iterations = max_iterations;
  options.relative_tolerance = tolerance;
  options.seed = 3;
  return options;
}

// Ends well separated in magnitude (10, -8, 6, 4), a bulk in [-2, 2].
std::vector<double> SeparatedSpectrum() {
  std::vector<double> spectrum = {10, -8, 6, 4};
  for (int i = 0; i < 56; ++i) spectrum.push_back(-2 + 4.0 * i / 55);
  return spectrum;
}

class PowerIterationTest : public DeviceTest {};

TEST_P(PowerIterationTest, TopKByMagnitudeMatchesEigvalsh) {
  const std::vector<double> spectrum = SeparatedSpectrum();
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 1);
  // The reference: eigvalsh, ordered by magnitude.
  std::vector<double> exact;
  const torch::Tensor values = torch::linalg_eigvalsh(a);
  for (int64_t i = 0; i < values.size(0); ++i)
    exact.push_back(values[i].item<double>());
  std::sort(exact.begin(), exact.end(),
            [](double x, double y) { return std::abs(x) > std::abs(y); });

  auto products = std::make_shared<int64_t>(0);
  std::vector<torch::Tensor> vectors;
  auto result =
      PowerIteration(MatrixOperator(a.to(device()), products), 60, options(),
                     TopK(4, 2000, 1e-10), Progress(), &vectors);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->converged);
  ASSERT_EQ(result->pairs.size(), 4);
  ASSERT_EQ(vectors.size(), 4);
  int64_t iterations = 0;
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE("pair " + std::to_string(i));
    const PowerEigenpair& pair = result->pairs[i];
    EXPECT_TRUE(pair.converged);
    EXPECT_NEAR(pair.value, exact[i], 1e-9 * std::abs(exact[i]));
    // The reported residual is that of A itself, and it is honest.
    const torch::Tensor v = vectors[i].to(torch::kCPU, torch::kFloat64);
    const double residual = (a.mv(v) - pair.value * v).norm().item<double>();
    EXPECT_NEAR(pair.residual_norm, residual, 1e-12 * std::abs(pair.value));
    EXPECT_LE(pair.residual_norm, 1e-9 * std::abs(pair.value));
    EXPECT_NEAR(v.norm().item<double>(), 1, 1e-12);
    for (int j = 0; j < i; ++j) {
      EXPECT_NEAR(
          v.dot(vectors[j].to(torch::kCPU, torch::kFloat64)).item<double>(), 0,
          1e-9);
    }
    iterations += pair.iterations;
  }
  EXPECT_EQ(result->hvps, iterations);
  EXPECT_EQ(*products, iterations);
}

TEST_P(PowerIterationTest, IterationLimitLeavesPairsUnconverged) {
  const torch::Tensor a = MatrixWithSpectrum(SeparatedSpectrum(), 2);
  auto result = PowerIteration(MatrixOperator(a.to(device())), 60, options(),
                               TopK(2, 3, 1e-10), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->converged);
  ASSERT_EQ(result->pairs.size(), 2);
  for (const PowerEigenpair& pair : result->pairs) {
    EXPECT_FALSE(pair.converged);
    EXPECT_EQ(pair.iterations, 3);
    EXPECT_GT(pair.residual_norm, 1e-10 * std::abs(pair.value));
  }
  EXPECT_EQ(result->hvps, 6);
}

TEST_P(PowerIterationTest, ZeroRemainderAndTopKCappedAtSize) {
  // Rank 2 in a 3-dimensional space: the third pair finds what is left, 0.
  const torch::Tensor a =
      torch::diag(torch::tensor({3.0, 0.0, -1.0}, torch::kFloat64));
  auto result = PowerIteration(MatrixOperator(a.to(device())), 3, options(),
                               TopK(5, 500, 1e-12), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->pairs.size(), 3);
  EXPECT_TRUE(result->converged);
  EXPECT_NEAR(result->pairs[0].value, 3, 1e-12);
  EXPECT_NEAR(result->pairs[1].value, -1, 1e-12);
  EXPECT_NEAR(result->pairs[2].value, 0, 1e-12);
}

TEST_P(PowerIterationTest, BadOptionsCancellationAndOperatorErrors) {
  const LinearOperator op =
      MatrixOperator(MatrixWithSpectrum(SeparatedSpectrum(), 4).to(device()));
  auto code = [&](const PowerIterationOptions& power, int64_t size = 60) {
    return PowerIteration(op, size, options(), power, Progress())
        .status()
        .code();
  };
  EXPECT_EQ(code(TopK(1, 10, 1e-3)), absl::StatusCode::kOk);
  EXPECT_EQ(code(TopK(1, 10, 1e-3), 0), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(TopK(0, 10, 1e-3)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(TopK(1, 0, 1e-3)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(TopK(1, 10, 0)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(TopK(1, 10, 1)), absl::StatusCode::kInvalidArgument);

  std::vector<double> fractions;
  int polls = 0;
  Progress progress;
  progress.report = [&fractions](double fraction, const std::string&) {
    fractions.push_back(fraction);
  };
  progress.cancelled = [&polls] { return ++polls > 6; };
  EXPECT_EQ(PowerIteration(op, 60, options(), TopK(2, 1000, 1e-12), progress)
                .status()
                .code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(polls, 7);
  ASSERT_EQ(fractions.size(), 6);
  for (size_t i = 1; i < fractions.size(); ++i) {
    EXPECT_GT(fractions[i], fractions[i - 1]);
  }

  const LinearOperator nan_op = testing::NonFiniteOperator(
      std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(PowerIteration(nan_op, 10, options(), TopK(1, 10, 1e-3), Progress())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const LinearOperator failing =
      [](const torch::Tensor&) -> absl::StatusOr<torch::Tensor> {
    return absl::ResourceExhaustedError("out of memory: test");
  };
  EXPECT_EQ(
      PowerIteration(failing, 10, options(), TopK(1, 10, 1e-3), Progress())
          .status()
          .code(),
      absl::StatusCode::kResourceExhausted);
}

CURVD_INSTANTIATE_DEVICE_TEST(PowerIterationTest);

}  // namespace
}  // namespace curvd::core

#include "core/estimators/trace_cubed.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/estimators/hutchinson.h"
#include "core/objective/objective.h"
#include "tests/core/test_matrices.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::ExplicitMatrix;
using ::curvd::core::testing::MatrixOperator;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::TanhMlp;

TraceOptions Probes(ProbeDistribution distribution, int min_probes,
                    int max_probes, double target, uint64_t seed) {
  TraceOptions options;
  options.distribution = distribution;
  options.min_probes = min_probes;
  options.max_probes = max_probes;
  options.target_relative_error = target;
  options.seed = seed;
  return options;
}

// Symmetric, indefinite, with a clear non-zero tr(A^3).
torch::Tensor TestMatrix() {
  const torch::Tensor b = SeededRandn({40, 40}, 1) / std::sqrt(40.0);
  return (b + b.t()) / 2 +
         torch::diag(torch::linspace(-0.5, 1.5, 40, torch::kFloat64));
}

class TraceCubedTest : public DeviceTest {};

TEST_P(TraceCubedTest, EstimateWithinFourStandardErrors) {
  const torch::Tensor a = TestMatrix();
  const double exact = torch::linalg_eigvalsh(a).pow(3).sum().item<double>();
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    for (uint64_t seed = 0; seed < 8; ++seed) {
      SCOPED_TRACE("seed " + std::to_string(seed));
      auto products = std::make_shared<int64_t>(0);
      auto result =
          TraceCubed(MatrixOperator(a.to(device()), products), 40, options(),
                     Probes(distribution, 100, 100, 0, seed), Progress());
      ASSERT_TRUE(result.ok()) << result.status();
      EXPECT_EQ(result->probes, 100);
      EXPECT_EQ(*products, 2 * result->probes);
      EXPECT_EQ(result->stop_reason, "max_probes");
      EXPECT_GT(result->standard_error, 0);
      EXPECT_LE(std::abs(result->trace - exact), 4 * result->standard_error);
    }
  }
}

TEST_P(TraceCubedTest, EqualsHutchinsonOnTheCubeWithTheSameProbes) {
  const torch::Tensor a = TestMatrix();
  const torch::Tensor cube = a.mm(a).mm(a);
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    const TraceOptions probes = Probes(distribution, 5, 50, 0.02, 3);
    auto cubed = TraceCubed(MatrixOperator(a.to(device())), 40, options(),
                            probes, Progress());
    auto hutchinson = Hutchinson(MatrixOperator(cube.to(device())), 40,
                                 options(), probes, Progress());
    ASSERT_TRUE(cubed.ok() && hutchinson.ok());
    EXPECT_EQ(cubed->probes, hutchinson->probes);
    EXPECT_EQ(cubed->stop_reason, hutchinson->stop_reason);
    EXPECT_NEAR(cubed->trace, hutchinson->trace,
                1e-10 * std::abs(hutchinson->trace));
    EXPECT_NEAR(cubed->standard_error, hutchinson->standard_error,
                1e-8 * hutchinson->standard_error);
  }
}

TEST_P(TraceCubedTest, DiagonalUnderRademacherIsExact) {
  const torch::Tensor a =
      torch::diag(torch::arange(-5, 15, torch::kFloat64)).to(device());
  double exact = 0;
  for (int i = -5; i < 15; ++i) exact += std::pow(i, 3);
  auto result = TraceCubed(
      MatrixOperator(a), 20, options(),
      Probes(ProbeDistribution::kRademacher, 4, 100, 0.01, 4), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stop_reason, "exact_zero_variance");
  EXPECT_EQ(result->probes, 4);
  EXPECT_DOUBLE_EQ(result->trace, exact);
  EXPECT_EQ(result->standard_error, 0);
}

TEST_P(TraceCubedTest, TanhMlpHessianCubed) {
  TanhMlp model({4, 10, 3}, /*seed=*/5);
  model.To(device(), torch::kFloat64);
  at::Generator generator = SeededGenerator(6);
  auto objective = Objective::Create(
      &model, SeededRandn({40, 4}, 7).to(device()),
      torch::randint(0, 3, {40}, generator, torch::kInt64).to(device()),
      LossFunction::kCrossEntropy, 16);
  ASSERT_TRUE(objective.ok()) << objective.status();
  const LinearOperator hvp = [&](const torch::Tensor& v) {
    return objective->Hvp(v);
  };
  const int64_t n = objective->num_parameters();
  const double exact = torch::linalg_eigvalsh(ExplicitMatrix(hvp, n, options()))
                           .pow(3)
                           .sum()
                           .item<double>();
  const int64_t before = objective->hvps();
  auto result = TraceCubed(
      hvp, n, options(), Probes(ProbeDistribution::kRademacher, 200, 200, 0, 8),
      Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(objective->hvps() - before, 400);
  EXPECT_LE(std::abs(result->trace - exact), 4 * result->standard_error);
}

TEST_P(TraceCubedTest, CancellationAndOperatorErrors) {
  const torch::Tensor a = TestMatrix().to(device());
  int polls = 0;
  Progress progress;
  progress.cancelled = [&polls] { return ++polls > 4; };
  EXPECT_EQ(
      TraceCubed(MatrixOperator(a), 40, options(),
                 Probes(ProbeDistribution::kGaussian, 10, 100, 0, 9), progress)
          .status()
          .code(),
      absl::StatusCode::kCancelled);
  EXPECT_EQ(polls, 5);
  EXPECT_EQ(
      TraceCubed(MatrixOperator(a), 40, options(),
                 Probes(ProbeDistribution::kGaussian, 0, 0, 0, 9), Progress())
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      TraceCubed(MatrixOperator(a), 0, options(),
                 Probes(ProbeDistribution::kGaussian, 1, 1, 0, 9), Progress())
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  const LinearOperator inf_op = testing::NonFiniteOperator(
      std::numeric_limits<double>::infinity());
  EXPECT_EQ(TraceCubed(inf_op, 40, options(),
                       Probes(ProbeDistribution::kGaussian, 10, 100, 0, 9),
                       Progress())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

CURVD_INSTANTIATE_DEVICE_TEST(TraceCubedTest);

}  // namespace
}  // namespace curvd::core

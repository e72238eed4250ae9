#include "core/estimators/hutchinson.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/objective/objective.h"
#include "tests/core/test_matrices.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::ExplicitMatrix;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::TanhMlp;

using ::curvd::core::testing::MatrixOperator;

// A symmetric 40 x 40 matrix with a clear non-zero trace.
torch::Tensor TestMatrix() {
  const torch::Tensor b = SeededRandn({40, 40}, 1);
  return (b + b.t()) / 2 +
         torch::diag(torch::linspace(0, 2, 40, torch::kFloat64));
}

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

std::string DistributionName(ProbeDistribution distribution) {
  return distribution == ProbeDistribution::kRademacher ? "rademacher"
                                                        : "gaussian";
}

class HutchinsonTest : public DeviceTest {};

TEST_P(HutchinsonTest, EstimateWithinFourStandardErrors) {
  const torch::Tensor a = TestMatrix();
  const double exact = a.trace().item<double>();
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    for (uint64_t seed = 0; seed < 10; ++seed) {
      SCOPED_TRACE(DistributionName(distribution) + " seed " +
                   std::to_string(seed));
      auto result =
          Hutchinson(MatrixOperator(a.to(device())), 40, options(),
                     Probes(distribution, 200, 200, 0, seed), Progress());
      ASSERT_TRUE(result.ok()) << result.status();
      EXPECT_EQ(result->probes, 200);
      EXPECT_EQ(result->stop_reason, "max_probes");
      EXPECT_GT(result->standard_error, 0);
      EXPECT_LE(std::abs(result->trace - exact), 4 * result->standard_error);
    }
  }
}

TEST_P(HutchinsonTest, StandardErrorMatchesSpreadOverSeeds) {
  const torch::Tensor a = TestMatrix().to(device());
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    SCOPED_TRACE(DistributionName(distribution));
    constexpr int kSeeds = 150;
    std::vector<double> estimates;
    double mean_standard_error = 0;
    for (uint64_t seed = 0; seed < kSeeds; ++seed) {
      auto result =
          Hutchinson(MatrixOperator(a), 40, options(),
                     Probes(distribution, 30, 30, 0, 1000 + seed), Progress());
      ASSERT_TRUE(result.ok()) << result.status();
      estimates.push_back(result->trace);
      mean_standard_error += result->standard_error / kSeeds;
    }
    const torch::Tensor spread =
        torch::tensor(estimates, torch::kFloat64).std();
    const double ratio = spread.item<double>() / mean_standard_error;
    EXPECT_GT(ratio, 1 / 1.5);
    EXPECT_LT(ratio, 1.5);
  }
}

TEST_P(HutchinsonTest, VarianceMatchesClosedForms) {
  const torch::Tensor a = TestMatrix();
  const double frobenius2 = a.pow(2).sum().item<double>();
  const double diagonal2 = a.diagonal().pow(2).sum().item<double>();
  constexpr int kProbes = 4000;
  // Var(v^T A v) = 2 (||A||_F^2 - sum A_ii^2) for Rademacher v, 2 ||A||_F^2 for
  // Gaussian.
  for (auto [distribution, variance] :
       {std::pair{ProbeDistribution::kRademacher, 2 * (frobenius2 - diagonal2)},
        std::pair{ProbeDistribution::kGaussian, 2 * frobenius2}}) {
    SCOPED_TRACE(DistributionName(distribution));
    auto result =
        Hutchinson(MatrixOperator(a.to(device())), 40, options(),
                   Probes(distribution, kProbes, kProbes, 0, 7), Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    const double sample_variance =
        result->standard_error * result->standard_error * kProbes;
    EXPECT_NEAR(sample_variance, variance, 0.1 * variance);
  }
}

TEST_P(HutchinsonTest, StopsAtTargetRelativeError) {
  const torch::Tensor a = TestMatrix() + 2 * torch::eye(40, torch::kFloat64);
  auto result = Hutchinson(
      MatrixOperator(a.to(device())), 40, options(),
      Probes(ProbeDistribution::kRademacher, 10, 100000, 0.02, 3), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stop_reason, "target_relative_error");
  EXPECT_GE(result->probes, 10);
  EXPECT_LT(result->probes, 100000);
  EXPECT_LE(result->standard_error, 0.02 * std::abs(result->trace));
  // One probe fewer would not have met the target.
  auto fewer = Hutchinson(
      MatrixOperator(a.to(device())), 40, options(),
      Probes(ProbeDistribution::kRademacher, 2, result->probes - 1, 0, 3),
      Progress());
  ASSERT_TRUE(fewer.ok()) << fewer.status();
  if (fewer->probes >= 10) {
    EXPECT_GT(fewer->standard_error, 0.02 * std::abs(fewer->trace));
  }
}

TEST_P(HutchinsonTest, DiagonalUnderRademacherIsExact) {
  const torch::Tensor a =
      torch::diag(torch::arange(1, 21, torch::kFloat64)).to(device());
  auto exact = Hutchinson(
      MatrixOperator(a), 20, options(),
      Probes(ProbeDistribution::kRademacher, 5, 100, 0.01, 4), Progress());
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_EQ(exact->stop_reason, "exact_zero_variance");
  EXPECT_EQ(exact->probes, 5);
  EXPECT_DOUBLE_EQ(exact->trace, 210);
  EXPECT_EQ(exact->standard_error, 0);

  // Target 0 asks for every probe; Gaussian probes vary even on a diagonal.
  auto all = Hutchinson(MatrixOperator(a), 20, options(),
                        Probes(ProbeDistribution::kRademacher, 5, 12, 0, 4),
                        Progress());
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->stop_reason, "max_probes");
  EXPECT_EQ(all->probes, 12);
  auto gaussian = Hutchinson(
      MatrixOperator(a), 20, options(),
      Probes(ProbeDistribution::kGaussian, 5, 12, 0.01, 4), Progress());
  ASSERT_TRUE(gaussian.ok()) << gaussian.status();
  EXPECT_GT(gaussian->standard_error, 0);
}

TEST_P(HutchinsonTest, TanhMlpHessianTrace) {
  TanhMlp model({5, 12, 3}, /*seed=*/5);
  model.To(device(), torch::kFloat64);
  at::Generator generator = SeededGenerator(6);
  const torch::Tensor x = SeededRandn({48, 5}, 7);
  const torch::Tensor labels =
      torch::randint(0, 3, {48}, generator, torch::kInt64);
  auto objective =
      Objective::Create(&model, x.to(device()), labels.to(device()),
                        LossFunction::kCrossEntropy, 20);
  ASSERT_TRUE(objective.ok()) << objective.status();
  const LinearOperator hvp = [&](const torch::Tensor& v) {
    return objective->Hvp(v);
  };
  const int64_t n = objective->num_parameters();
  const double exact = ExplicitMatrix(hvp, n, options()).trace().item<double>();
  const TraceOptions probes =
      Probes(ProbeDistribution::kRademacher, 100, 100, 0, 8);
  auto result = Hutchinson(hvp, n, options(), probes, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_LE(std::abs(result->trace - exact), 4 * result->standard_error);

  // The probes come from a CPU generator, so float32 on the device sees the
  // same ones: the estimates agree to float32 accuracy, far inside the standard
  // error.
  TanhMlp single_model({5, 12, 3}, /*seed=*/5);
  single_model.To(device(), torch::kFloat32);
  auto single =
      Objective::Create(&single_model, x.to(device(), torch::kFloat32),
                        labels.to(device()), LossFunction::kCrossEntropy, 20);
  ASSERT_TRUE(single.ok()) << single.status();
  auto single_result =
      Hutchinson([&](const torch::Tensor& v) { return single->Hvp(v); }, n,
                 options(torch::kFloat32), probes, Progress());
  ASSERT_TRUE(single_result.ok()) << single_result.status();
  EXPECT_NEAR(single_result->trace, result->trace,
              1e-4 * std::abs(result->trace));
}

TEST_P(HutchinsonTest, CancellationAndOperatorErrors) {
  const torch::Tensor a = TestMatrix().to(device());
  int polls = 0;
  Progress progress;
  progress.cancelled = [&polls] { return ++polls > 4; };
  EXPECT_EQ(
      Hutchinson(MatrixOperator(a), 40, options(),
                 Probes(ProbeDistribution::kGaussian, 10, 100, 0, 9), progress)
          .status()
          .code(),
      absl::StatusCode::kCancelled);
  EXPECT_EQ(polls, 5);

  const LinearOperator inf_op = testing::NonFiniteOperator(
      std::numeric_limits<double>::infinity());
  EXPECT_EQ(Hutchinson(inf_op, 40, options(),
                       Probes(ProbeDistribution::kGaussian, 10, 100, 0, 9),
                       Progress())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// Y = A X^T transposed: the rows of the block through `a`.
BlockOperator MatrixBlockOperator(const torch::Tensor& a) {
  return [a](const torch::Tensor& x) -> absl::StatusOr<torch::Tensor> {
    return x.mm(a);  // a is symmetric
  };
}

void ExpectSameEstimate(const TraceResult& actual,
                        const TraceResult& expected) {
  EXPECT_EQ(actual.probes, expected.probes);
  EXPECT_EQ(actual.stop_reason, expected.stop_reason);
  EXPECT_NEAR(actual.trace, expected.trace, 1e-12 * std::abs(expected.trace));
  EXPECT_NEAR(actual.standard_error, expected.standard_error,
              1e-10 * expected.standard_error);
}

// Blocks change how probes reach the operator, not the estimate: the same
// probes, terms and stopping point, also when the stop falls inside a block.
TEST_P(HutchinsonTest, BlocksGiveTheSequentialEstimate) {
  const torch::Tensor a =
      (TestMatrix() + 2 * torch::eye(40, torch::kFloat64)).to(device());
  for (const TraceOptions& probes :
       {Probes(ProbeDistribution::kRademacher, 10, 100000, 0.02, 3),
        Probes(ProbeDistribution::kGaussian, 5, 37, 0, 4),
        Probes(ProbeDistribution::kRademacher, 5, 100, 0.5, 5)}) {
    auto sequential =
        Hutchinson(MatrixOperator(a), 40, options(), probes, Progress());
    ASSERT_TRUE(sequential.ok()) << sequential.status();
    for (int block : {1, 3, 16, 1000}) {
      SCOPED_TRACE(absl::StrCat(sequential->stop_reason, ", block ", block));
      int64_t products = 0;
      const BlockOperator counted =
          [&](const torch::Tensor& x) -> absl::StatusOr<torch::Tensor> {
        products += x.size(0);
        return MatrixBlockOperator(a)(x);
      };
      auto blocked =
          BlockHutchinson(counted, 40, options(), probes, Progress(), block);
      ASSERT_TRUE(blocked.ok()) << blocked.status();
      ExpectSameEstimate(*blocked, *sequential);
      EXPECT_GE(products, blocked->probes);
      EXPECT_LT(products, blocked->probes + block);
    }
  }
  EXPECT_EQ(BlockHutchinson(MatrixBlockOperator(a), 40, options(),
                            Probes(ProbeDistribution::kGaussian, 5, 10, 0, 1),
                            Progress(), 0)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// The objective's block products, per block or from retained graphs, give the
// estimate of one HVP per probe.
TEST_P(HutchinsonTest, ObjectiveBlocksGiveTheSequentialEstimate) {
  TanhMlp model({5, 12, 3}, /*seed=*/10);
  model.To(device(), torch::kFloat64);
  at::Generator generator = SeededGenerator(11);
  const torch::Tensor x = SeededRandn({45, 5}, 12).to(device());
  const torch::Tensor labels =
      torch::randint(0, 3, {45}, generator, torch::kInt64).to(device());
  auto reference =
      Objective::Create(&model, x, labels, LossFunction::kCrossEntropy, 20);
  ASSERT_TRUE(reference.ok()) << reference.status();
  const int64_t n = reference->num_parameters();
  const TraceOptions probes =
      Probes(ProbeDistribution::kRademacher, 10, 60, 0.05, 13);
  auto sequential =
      Hutchinson([&](const torch::Tensor& v) { return reference->Hvp(v); }, n,
                 options(), probes, Progress());
  ASSERT_TRUE(sequential.ok()) << sequential.status();
  for (bool retain : {false, true}) {
    SCOPED_TRACE(retain);
    auto objective =
        Objective::Create(&model, x, labels, LossFunction::kCrossEntropy, 20);
    ASSERT_TRUE(objective.ok()) << objective.status();
    objective->set_retain_graphs(retain);
    auto blocked = BlockHutchinson(
        [&](const torch::Tensor& v) { return objective->Hvps(v); }, n,
        options(), probes, Progress(), 8);
    ASSERT_TRUE(blocked.ok()) << blocked.status();
    ExpectSameEstimate(*blocked, *sequential);
  }
}

TEST_P(HutchinsonTest, BlockPollsOncePerBlockAndNamesTheBadProbe) {
  const torch::Tensor a = TestMatrix().to(device());
  int polls = 0;
  std::vector<double> fractions;
  Progress progress;
  progress.cancelled = [&polls] { return ++polls > 2; };
  progress.report = [&fractions](double fraction, const std::string&) {
    fractions.push_back(fraction);
  };
  EXPECT_EQ(BlockHutchinson(MatrixBlockOperator(a), 40, options(),
                            Probes(ProbeDistribution::kGaussian, 10, 100, 0, 9),
                            progress, 16)
                .status()
                .code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(polls, 3);
  EXPECT_EQ(fractions, (std::vector<double>{0, 0.16}));

  // Only the fifth row of each block is not finite.
  const BlockOperator fifth_is_nan =
      [&a](const torch::Tensor& x) -> absl::StatusOr<torch::Tensor> {
    torch::Tensor y = x.mm(a);
    if (y.size(0) > 4) y[4].fill_(std::numeric_limits<double>::quiet_NaN());
    return y;
  };
  const absl::Status nan =
      BlockHutchinson(fifth_is_nan, 40, options(),
                      Probes(ProbeDistribution::kGaussian, 10, 100, 0, 9),
                      Progress(), 8)
          .status();
  EXPECT_EQ(nan.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(nan.message()), ::testing::HasSubstr("probe 5 "));
}

CURVD_INSTANTIATE_DEVICE_TEST(HutchinsonTest);

}  // namespace
}  // namespace curvd::core

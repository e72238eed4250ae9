#include "core/estimators/hutchpp.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/estimators/hutchinson.h"
#include "tests/core/test_matrices.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::MatrixOperator;
using ::curvd::core::testing::MatrixWithSpectrum;
using ::curvd::core::testing::SeededRandn;

HutchppOptions Budget(int max_hvps, double target, uint64_t seed) {
  HutchppOptions options;
  options.max_hvps = max_hvps;
  options.target_relative_error = target;
  options.seed = seed;
  return options;
}

class HutchppTest : public DeviceTest {};

TEST_P(HutchppTest, ExactWhenTheRankFitsInTheSketch) {
  std::vector<double> spectrum(60, 0.0);
  for (int i = 0; i < 5; ++i) spectrum[i] = 3.0 - i;  // 3, 2, 1, 0, -1
  spectrum[3] = 0.25;
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 1);
  auto products = std::make_shared<int64_t>(0);
  auto result = HutchPlusPlus(MatrixOperator(a.to(device()), products), 60,
                              options(), Budget(30, 0, 2), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->sketch_size, 10);
  EXPECT_EQ(result->residual_probes, 10);
  EXPECT_EQ(result->hvps, 30);
  EXPECT_EQ(*products, 30);
  EXPECT_EQ(result->stop_reason, "max_hvps");
  EXPECT_NEAR(result->low_rank_trace, 5.25, 1e-12);
  EXPECT_NEAR(result->residual_trace, 0, 1e-12);
  EXPECT_NEAR(result->trace, 5.25, 1e-12);
  EXPECT_LT(result->standard_error, 1e-12);
  // 3^2 + 2^2 + 1^2 + 0.25^2 + 1^2, all in the sketch.
  EXPECT_NEAR(result->frobenius_norm_squared, 15.0625, 1e-10);
  EXPECT_NEAR(result->sketch_frobenius_fraction, 1, 1e-12);
  EXPECT_NEAR(result->hutchinson_standard_error_same_hvps,
              std::sqrt(2 * 15.0625 / 30), 1e-10);
}

TEST_P(HutchppTest, ASketchOfAFlatSpectrumHoldsItsShareOfTheFrobeniusNorm) {
  // A = I on 400 coordinates: |A|_F^2 = 400 and any 20-column sketch holds
  // exactly 20 of it. The residual part, 400 - |Q^T z|^2 per probe, averages
  // 380 with a spread of about 1.5 over 20 probes.
  constexpr int64_t kSize = 400;
  const torch::Tensor a = torch::eye(kSize, options());
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    HutchppOptions hutchpp = Budget(60, 0, 9);
    hutchpp.distribution = distribution;
    auto result =
        HutchPlusPlus(MatrixOperator(a), kSize, options(), hutchpp, Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(result->sketch_size, 20);
    const double tolerance = distribution == ProbeDistribution::kRademacher
                                 ? 8.0
                                 : 25.0;  // Gaussian |z|^2 varies too
    EXPECT_NEAR(result->frobenius_norm_squared, 400, tolerance);
    EXPECT_NEAR(result->sketch_frobenius_fraction,
                20 / result->frobenius_norm_squared, 1e-12);
    EXPECT_NEAR(result->sketch_frobenius_fraction, 0.05, 0.006);
  }
}

TEST_P(HutchppTest, BeatsHutchinsonAtEqualBudgetOnFastDecay) {
  constexpr int64_t kSize = 200;
  constexpr int kBudget = 60;
  std::vector<double> spectrum;
  for (int i = 0; i < kSize; ++i) spectrum.push_back(10 * std::pow(0.85, i));
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 3).to(device());
  const double exact = a.trace().item<double>();
  double frobenius_squared = 0;
  for (double lambda : spectrum) frobenius_squared += lambda * lambda;
  double hutchpp_squared = 0, hutchinson_squared = 0, estimated_frobenius = 0;
  constexpr int kSeeds = 10;
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    auto plus = HutchPlusPlus(MatrixOperator(a), kSize, options(),
                              Budget(kBudget, 0, 100 + seed), Progress());
    ASSERT_TRUE(plus.ok()) << plus.status();
    EXPECT_EQ(plus->hvps, kBudget);
    TraceOptions trace;
    trace.min_probes = kBudget;
    trace.max_probes = kBudget;
    trace.target_relative_error = 0;
    trace.seed = 100 + seed;
    auto plain =
        Hutchinson(MatrixOperator(a), kSize, options(), trace, Progress());
    ASSERT_TRUE(plain.ok()) << plain.status();
    hutchpp_squared += std::pow(plus->trace - exact, 2) / kSeeds;
    hutchinson_squared += std::pow(plain->trace - exact, 2) / kSeeds;
    // The standard errors tell the same story, and so does the result's own
    // estimate of what Hutchinson would have given.
    EXPECT_LT(plus->standard_error, plain->standard_error);
    EXPECT_LT(plus->standard_error,
              plus->hutchinson_standard_error_same_hvps / 3);
    EXPECT_GT(plus->sketch_frobenius_fraction, 0.95);
    estimated_frobenius += plus->frobenius_norm_squared / kSeeds;
  }
  EXPECT_NEAR(estimated_frobenius, frobenius_squared, 0.05 * frobenius_squared);
  // With k = 20 the sketch leaves 0.85^20 ~ 4% of the spectrum's scale; the
  // RMS error falls by far more than the factor 3 asked here.
  EXPECT_LT(std::sqrt(hutchpp_squared), std::sqrt(hutchinson_squared) / 3)
      << "Hutch++ RMS " << std::sqrt(hutchpp_squared) << ", Hutchinson RMS "
      << std::sqrt(hutchinson_squared);
}

TEST_P(HutchppTest, EstimateWithinFourStandardErrors) {
  // A slowly decaying, indefinite spectrum: the residual part carries weight.
  const torch::Tensor b = SeededRandn({80, 80}, 4);
  const torch::Tensor a = ((b + b.t()) / 2 + torch::diag(torch::linspace(
                                                 0, 3, 80, torch::kFloat64)))
                              .to(device());
  const double exact = a.trace().item<double>();
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    for (uint64_t seed = 0; seed < 8; ++seed) {
      SCOPED_TRACE("seed " + std::to_string(seed));
      HutchppOptions hutchpp = Budget(150, 0, seed);
      hutchpp.distribution = distribution;
      auto result =
          HutchPlusPlus(MatrixOperator(a), 80, options(), hutchpp, Progress());
      ASSERT_TRUE(result.ok()) << result.status();
      EXPECT_EQ(result->residual_probes, 50);
      EXPECT_GT(result->standard_error, 0);
      EXPECT_NEAR(result->trace,
                  result->low_rank_trace + result->residual_trace,
                  1e-12 * std::abs(result->trace) + 1e-12);
      EXPECT_LE(std::abs(result->trace - exact), 4 * result->standard_error);
    }
  }
}

TEST_P(HutchppTest, StopsAtTargetAndHonoursSketchSize) {
  std::vector<double> spectrum;
  for (int i = 0; i < 100; ++i) spectrum.push_back(1 + 5 * std::pow(0.7, i));
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 5).to(device());
  auto products = std::make_shared<int64_t>(0);
  HutchppOptions hutchpp = Budget(10000, 0.01, 6);
  hutchpp.sketch_size = 8;
  auto result = HutchPlusPlus(MatrixOperator(a, products), 100, options(),
                              hutchpp, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stop_reason, "target_relative_error");
  EXPECT_EQ(result->sketch_size, 8);
  EXPECT_GE(result->residual_probes, 10);
  EXPECT_LT(result->hvps, 10000);
  EXPECT_EQ(result->hvps, 16 + result->residual_probes);
  EXPECT_EQ(*products, result->hvps);
  EXPECT_LE(result->standard_error, 0.01 * std::abs(result->trace));

  // A sketch that spans the whole space leaves a residual of rounding only.
  auto scalar = HutchPlusPlus(
      MatrixOperator(torch::full({1, 1}, 2.5, torch::kFloat64).to(device())), 1,
      options(), Budget(30, 0.01, 7), Progress());
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  EXPECT_EQ(scalar->sketch_size, 1);
  EXPECT_NEAR(scalar->trace, 2.5, 1e-14);
}

TEST_P(HutchppTest, RejectsBadOptions) {
  const LinearOperator op =
      MatrixOperator(torch::eye(10, torch::kFloat64).to(device()));
  auto code = [&](const HutchppOptions& hutchpp, int64_t size = 10) {
    return HutchPlusPlus(op, size, options(), hutchpp, Progress())
        .status()
        .code();
  };
  EXPECT_EQ(code(Budget(9, 0, 1)), absl::StatusCode::kOk);
  EXPECT_EQ(code(Budget(9, 0, 1), 0), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Budget(2, 0, 1)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Budget(9, -1, 1)), absl::StatusCode::kInvalidArgument);
  HutchppOptions bad = Budget(9, 0, 1);
  bad.sketch_size = 5;  // 2 * 5 >= 9: no product left for the residual
  EXPECT_EQ(code(bad), absl::StatusCode::kInvalidArgument);
  bad.sketch_size = -1;
  EXPECT_EQ(code(bad), absl::StatusCode::kInvalidArgument);
  bad = Budget(9, 0, 1);
  bad.min_residual_probes = 0;
  EXPECT_EQ(code(bad), absl::StatusCode::kInvalidArgument);
}

TEST_P(HutchppTest, ProgressCancellationAndOperatorErrors) {
  const torch::Tensor a =
      MatrixWithSpectrum(std::vector<double>(30, 1.0), 8) +
      torch::diag(torch::linspace(0, 1, 30, torch::kFloat64));
  std::vector<double> fractions;
  Progress reporting;
  reporting.report = [&fractions](double fraction, const std::string&) {
    fractions.push_back(fraction);
  };
  ASSERT_TRUE(HutchPlusPlus(MatrixOperator(a.to(device())), 30, options(),
                            Budget(12, 0, 9), reporting)
                  .ok());
  ASSERT_EQ(fractions.size(), 12);
  for (size_t i = 1; i < fractions.size(); ++i) {
    EXPECT_GT(fractions[i], fractions[i - 1]);
  }

  int polls = 0;
  Progress cancelling;
  cancelling.cancelled = [&polls] { return ++polls > 5; };
  EXPECT_EQ(HutchPlusPlus(MatrixOperator(a.to(device())), 30, options(),
                          Budget(12, 0, 9), cancelling)
                .status()
                .code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(polls, 6);

  const LinearOperator inf_op = testing::NonFiniteOperator(
      std::numeric_limits<double>::infinity());
  EXPECT_EQ(HutchPlusPlus(inf_op, 30, options(), Budget(12, 0, 9), Progress())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const LinearOperator failing =
      [](const torch::Tensor&) -> absl::StatusOr<torch::Tensor> {
    return absl::ResourceExhaustedError("out of memory: test");
  };
  EXPECT_EQ(HutchPlusPlus(failing, 30, options(), Budget(12, 0, 9), Progress())
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
}

CURVD_INSTANTIATE_DEVICE_TEST(HutchppTest);

}  // namespace
}  // namespace curvd::core

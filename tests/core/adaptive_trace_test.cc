#include "core/estimators/adaptive_trace.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
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

AdaptiveTraceOptions ToStandardError(
    double target, uint64_t seed,
    ProbeDistribution distribution = ProbeDistribution::kRademacher) {
  AdaptiveTraceOptions options;
  options.distribution = distribution;
  options.target_standard_error = target;
  options.target_relative_error = 0;
  options.seed = seed;
  return options;
}

class AdaptiveTraceTest : public DeviceTest {};

TEST_P(AdaptiveTraceTest, SketchesAFastDecayAndBeatsHutchinson) {
  // 10 * 0.8^i on 300 coordinates: |A|_F^2 = 100 / 0.36 ~ 278, so plain
  // Hutchinson needs about 2 * 278 / 1.6^2 ~ 217 probes for an SE of 1.6,
  // while an 8-column sketch leaves 0.8^16 ~ 3% of |A|_F^2.
  constexpr int64_t kSize = 300;
  constexpr double kTarget = 1.6;
  std::vector<double> spectrum;
  for (int i = 0; i < kSize; ++i) spectrum.push_back(10 * std::pow(0.8, i));
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 7).to(device());
  const double exact = a.trace().item<double>();
  const double hutchinson_probes =
      2 * (a * a).sum().item<double>() / (kTarget * kTarget);
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    for (uint64_t seed = 0; seed < 8; ++seed) {
      SCOPED_TRACE(std::string(distribution == ProbeDistribution::kGaussian
                                   ? "gaussian"
                                   : "rademacher") +
                   " seed " + std::to_string(seed));
      auto products = std::make_shared<int64_t>(0);
      auto result = AdaptiveTrace(MatrixOperator(a, products), kSize, options(),
                                  ToStandardError(kTarget, seed, distribution),
                                  Progress());
      ASSERT_TRUE(result.ok()) << result.status();
      EXPECT_EQ(result->method, "hutch++") << result->decision;
      EXPECT_GE(result->sketch_size, 8);
      EXPECT_EQ(result->hvps, *products);
      EXPECT_EQ(result->hvps, 2 * result->sketch_size + result->probes);
      EXPECT_EQ(result->stop_reason, "target_standard_error");
      EXPECT_LE(result->standard_error, kTarget);
      EXPECT_LT(result->hvps, hutchinson_probes / 4);
      // The share is against |A|_F^2 estimated from the sketch probes' |A s|^2,
      // which a few dominant directions make noisy (the exact share is ~0.97).
      EXPECT_GT(result->sketch_frobenius_fraction, 0.7);
      EXPECT_NE(result->decision.find("hutch++ with k = "), std::string::npos);
      // Within 4 standard errors (of the residual part, given Q) of the trace.
      EXPECT_LE(std::abs(result->trace - exact), 4 * result->standard_error);
    }
  }
}

TEST_P(AdaptiveTraceTest, FallsBackToHutchinsonOnAFlatSpectrum) {
  // Eigenvalues +-1..2 with alternating signs on 400 coordinates: any small
  // sketch holds ~k / 400 of |A|_F^2 ~ 930, and an SE of 4.5 needs about 90
  // Hutchinson probes, far fewer than the dimension.
  constexpr int64_t kSize = 400;
  constexpr double kTarget = 4.5;
  std::vector<double> spectrum;
  for (int i = 0; i < kSize; ++i) {
    spectrum.push_back((i % 2 ? -1 : 1) * (1 + static_cast<double>(i) / kSize));
  }
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 8).to(device());
  const double exact = a.trace().item<double>();
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    for (uint64_t seed = 0; seed < 8; ++seed) {
      SCOPED_TRACE(std::string(distribution == ProbeDistribution::kGaussian
                                   ? "gaussian"
                                   : "rademacher") +
                   " seed " + std::to_string(seed));
      auto result = AdaptiveTrace(MatrixOperator(a), kSize, options(),
                                  ToStandardError(kTarget, seed, distribution),
                                  Progress());
      ASSERT_TRUE(result.ok()) << result.status();
      EXPECT_EQ(result->method, "hutchinson") << result->decision;
      EXPECT_EQ(result->sketch_size, 0);
      // Decided before the sketch's low-rank products: the 8 sketch probes
      // count as Hutchinson probes, and nothing is spent on the sketch.
      EXPECT_EQ(result->hvps, result->probes) << result->decision;
      EXPECT_EQ(result->decision.rfind("after 8 sketch products", 0), 0u)
          << result->decision;
      EXPECT_EQ(result->stop_reason, "target_standard_error");
      EXPECT_LE(result->standard_error, kTarget);
      EXPECT_LT(result->sketch_frobenius_fraction, 0.05);
      EXPECT_LE(std::abs(result->trace - exact), 4 * result->standard_error);
    }
  }
}

TEST_P(AdaptiveTraceTest, ABudgetWithNoRoomForTheSketchTakesHutchinsonAtOnce) {
  // The fast decay above, where Hutch++ wins, but max_hvps = k0 + 2 leaves
  // no room for the 8 low-rank products and min_probes residual probes.
  std::vector<double> spectrum;
  for (int i = 0; i < 300; ++i) spectrum.push_back(10 * std::pow(0.8, i));
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 7).to(device());
  AdaptiveTraceOptions adaptive = ToStandardError(1.6, 3);
  adaptive.max_hvps = adaptive.initial_sketch_size + 2;
  auto result =
      AdaptiveTrace(MatrixOperator(a), 300, options(), adaptive, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->method, "hutchinson") << result->decision;
  EXPECT_EQ(result->hvps, adaptive.max_hvps) << "within the budget";
  EXPECT_EQ(result->probes, result->hvps);
  EXPECT_EQ(result->stop_reason, "max_hvps");
  EXPECT_NE(result->decision.find("no room in max_hvps"), std::string::npos)
      << result->decision;
}

TEST_P(AdaptiveTraceTest, AnOddFirstSketchIsJudgedByItsTwoUnequalParts) {
  // The flat spectrum of the fall-back test with k0 = 3 (halves of 1 and 2):
  // Hutchinson at once still, and still near the exact trace.
  std::vector<double> spectrum;
  for (int i = 0; i < 400; ++i) {
    spectrum.push_back((i % 2 ? -1 : 1) * (1 + static_cast<double>(i) / 400));
  }
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 8).to(device());
  AdaptiveTraceOptions adaptive = ToStandardError(4.5, 5);
  adaptive.initial_sketch_size = 3;
  auto result =
      AdaptiveTrace(MatrixOperator(a), 400, options(), adaptive, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->method, "hutchinson") << result->decision;
  EXPECT_EQ(result->hvps, result->probes) << result->decision;
  EXPECT_EQ(result->decision.rfind("after 3 sketch products (a basis of the first 1", 0), 0u)
      << result->decision;
  EXPECT_LE(std::abs(result->trace - a.trace().item<double>()),
            4 * result->standard_error);
}

TEST_P(AdaptiveTraceTest, ExactWhenTheSketchSpansTheOperator) {
  const torch::Tensor a = MatrixWithSpectrum({3, -1, 0.5, 2, 1, 4}, 9);
  AdaptiveTraceOptions adaptive = ToStandardError(0, 1);
  adaptive.target_relative_error = 1e-6;
  auto result = AdaptiveTrace(MatrixOperator(a.to(device())), 6, options(),
                              adaptive, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->method, "hutch++") << result->decision;
  EXPECT_EQ(result->sketch_size, 6);
  EXPECT_NEAR(result->trace, 9.5, 1e-10);
  EXPECT_LT(result->standard_error, 1e-10);
}

TEST_P(AdaptiveTraceTest, RelativeTargetAndBudget) {
  std::vector<double> spectrum(200, 1.0);
  for (int i = 0; i < 200; ++i) spectrum[i] = i % 2 ? -1.0 : 1.5;
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 10).to(device());
  AdaptiveTraceOptions adaptive = ToStandardError(0, 2);
  adaptive.target_relative_error = 1e-4;  // out of reach in 40 products
  adaptive.max_hvps = 40;
  auto result =
      AdaptiveTrace(MatrixOperator(a), 200, options(), adaptive, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->hvps, 40);
  EXPECT_EQ(result->stop_reason, "max_hvps");
  EXPECT_GT(result->standard_error, 1e-4 * std::abs(result->trace));
}

TEST_P(AdaptiveTraceTest, RejectsBadOptionsAndHonoursCancellation) {
  const torch::Tensor a = torch::eye(10, options());
  auto bad = [&](AdaptiveTraceOptions adaptive, int64_t size = 10) {
    auto result =
        AdaptiveTrace(MatrixOperator(a), size, options(), adaptive, Progress());
    return result.status().code();
  };
  const auto invalid = absl::StatusCode::kInvalidArgument;
  AdaptiveTraceOptions ok = ToStandardError(0.1, 0);
  EXPECT_EQ(bad(ok, 0), invalid);
  AdaptiveTraceOptions o = ok;
  o.target_standard_error = 0;
  EXPECT_EQ(bad(o), invalid);  // no target
  o = ok;
  o.target_standard_error = -1;
  EXPECT_EQ(bad(o), invalid);
  o = ok;
  o.initial_sketch_size = 0;
  EXPECT_EQ(bad(o), invalid);
  o = ok;
  o.min_probes = 0;
  EXPECT_EQ(bad(o), invalid);
  o = ok;
  o.max_hvps = o.initial_sketch_size + 1;
  EXPECT_EQ(bad(o), invalid);
  Progress cancelled;
  cancelled.cancelled = [] { return true; };
  auto result = AdaptiveTrace(MatrixOperator(a), 10, options(), ok, cancelled);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
}

CURVD_INSTANTIATE_DEVICE_TEST(AdaptiveTraceTest);

}  // namespace
}  // namespace curvd::core

// SGLD against the exact answer of ../shared/VALIDATION.md: on the minimally
// singular quadratic L(w) = sum_{i<r} w_i^2 with w* = 0, each constrained
// coordinate is an AR(1) process w <- c w + sqrt(epsilon) xi, c = 1 - epsilon
// a / 2, a = 2 n_beta + gamma + precision, so from w* its variance after t
// steps is V (1 - c^{2t}), V = 1 / (a (1 - epsilon a / 4)), and the mean of
// n_beta L over draws 1..T is n_beta r V mean_t (1 - c^{2t}), the burn-in
// transient included.
#include "core/samplers/sgld.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>

#include "core/objective/linear_operator.h"
#include "core/samplers/sampler.h"
#include "tests/core/sampler_testing.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::MeanOverChains;
using ::curvd::core::testing::Quadratic;
using ::curvd::core::testing::SamplerOptions;

class SgldTest : public DeviceTest {};

struct Setting {
  double step_size;
  double n_beta;
  double localization;
  double prior_precision;
};

// The exact expectation of n_beta * mean over steps 1..steps of L(w_t).
double ExactLlcEstimate(const Setting& s, int rank, int steps) {
  const double a = 2 * s.n_beta + s.localization + s.prior_precision;
  const double variance = 1 / (a * (1 - s.step_size * a / 4));
  const double c = 1 - s.step_size * a / 2;
  double transient = 0;
  for (int t = 1; t <= steps; ++t) transient += 1 - std::pow(c, 2 * t);
  return s.n_beta * rank * variance * transient / steps;
}

TEST_P(SgldTest, QuadraticMatchesTheExactExpectationWithinThreeStandardErrors) {
  constexpr int64_t kChains = 256;
  constexpr int64_t kSize = 20;
  constexpr int kRank = 5;
  constexpr int kSteps = 400;
  // Settings with epsilon a from 0.02 to 0.3: the transient spans 3 to 50
  // steps, and the epsilon bias 1 / (1 - epsilon a / 4) from 0.5% to 8%.
  const Setting cases[] = {
      {1e-3, 10, 1, 0}, {1e-2, 5, 5, 0}, {1e-3, 100, 0, 50}};
  const Quadratic quadratic{kRank};
  for (const Setting& s : cases) {
    SCOPED_TRACE(::testing::Message() << "epsilon " << s.step_size << " n_beta "
                                      << s.n_beta << " gamma " << s.localization
                                      << " precision " << s.prior_precision);
    const torch::Tensor center = torch::zeros({kSize}, options());
    absl::StatusOr<std::unique_ptr<Sampler>> sampler =
        MakeSampler(SamplerOptions(LlcSampler::kSgld, s.step_size,
                                   s.localization, s.prior_precision),
                    s.n_beta, center, ChainStreams(device(), 11));
    ASSERT_TRUE(sampler.ok()) << sampler.status();
    torch::Tensor chains = torch::zeros({kChains, kSize}, options());
    torch::Tensor loss_sum = torch::zeros({kChains}, options());
    for (int t = 0; t < kSteps; ++t) {
      ASSERT_TRUE((*sampler)->Step(quadratic, chains).ok());
      loss_sum += quadratic(chains).losses;
    }
    const auto [mean, standard_error] =
        MeanOverChains(loss_sum * (s.n_beta / kSteps));
    const double exact = ExactLlcEstimate(s, kRank, kSteps);
    EXPECT_LE(std::abs(mean - exact), 3 * standard_error)
        << mean << " +- " << standard_error << " vs exact " << exact;
    // The test can tell the answer apart: the no-bias, stationary r / 2 is
    // further than the tolerance for these settings.
    EXPECT_GT(std::abs(kRank / 2.0 - exact), 3 * standard_error);
  }
}

TEST_P(SgldTest, ReturnsTheLossesAtTheStartOfTheStep) {
  const Quadratic quadratic{2};
  absl::StatusOr<std::unique_ptr<Sampler>> sampler =
      MakeSampler(SamplerOptions(LlcSampler::kSgld, 1e-2, 1), 1,
                  torch::zeros({3}, options()), ChainStreams(device(), 2));
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  torch::Tensor chains = torch::ones({4, 3}, options());
  const torch::Tensor before = quadratic(chains).losses;
  absl::StatusOr<torch::Tensor> losses = (*sampler)->Step(quadratic, chains);
  ASSERT_TRUE(losses.ok()) << losses.status();
  EXPECT_TRUE(torch::equal(*losses, before));
  EXPECT_FALSE(torch::equal(quadratic(chains).losses, before));
  EXPECT_FALSE((*sampler)->AcceptanceRates().has_value());
  EXPECT_FALSE((*sampler)->KineticTemperatures().has_value());
}

CURVD_INSTANTIATE_DEVICE_TEST(SgldTest);

}  // namespace
}  // namespace curvd::core

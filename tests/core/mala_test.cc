// MALA on the minimally singular quadratic L(w) = sum_{i<r} w_i^2, w* = 0:
// the chain samples exp(-U) exactly, so E[n_beta L] = r n_beta / a,
// a = 2 n_beta + gamma, at any step size, where SGLD's is r n_beta / (a (1 -
// epsilon a / 4)) (../shared/VALIDATION.md).
#include "core/samplers/mala.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <utility>
#include <vector>

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
using ::curvd::core::testing::StationaryLlc;

class MalaTest : public DeviceTest {
 protected:
  std::unique_ptr<Sampler> MakeMala(double step_size, double localization,
                                    double n_beta, int64_t size) {
    absl::StatusOr<std::unique_ptr<Sampler>> sampler = MakeSampler(
        SamplerOptions(LlcSampler::kMala, step_size, localization), n_beta,
        torch::zeros({size}, options()), ChainStreams(device(), 5));
    EXPECT_TRUE(sampler.ok()) << sampler.status();
    return std::move(sampler).value();
  }
};

TEST_P(MalaTest, QuadraticHasNoStepSizeBias) {
  constexpr int64_t kChains = 256;
  constexpr int64_t kSize = 10;
  constexpr int kRank = 5;
  constexpr int kBurnIn = 200;
  constexpr int kDraws = 1000;
  constexpr double kNBeta = 10;
  const LlcOptions o = SamplerOptions(LlcSampler::kMala, 0.013, 10);
  const double a = 2 * kNBeta + o.localization;  // 30; epsilon a = 0.4
  std::unique_ptr<Sampler> sampler =
      MakeMala(o.step_size, o.localization, kNBeta, kSize);
  const Quadratic quadratic{kRank};
  torch::Tensor chains = torch::zeros({kChains, kSize}, options());
  torch::Tensor loss_sum = torch::zeros({kChains}, options());
  torch::Tensor moves = torch::zeros({kChains}, options());
  for (int t = 0; t < kBurnIn + kDraws; ++t) {
    const torch::Tensor before = chains.clone();
    absl::StatusOr<torch::Tensor> losses = sampler->Step(quadratic, chains);
    ASSERT_TRUE(losses.ok()) << losses.status();
    // A proposal differs from its start almost surely: a chain that moved
    // accepted.
    moves += (chains != before).any(1).to(moves.scalar_type());
    if (t >= kBurnIn) loss_sum += *losses;
  }
  // One evaluation per step and one for the start.
  EXPECT_EQ(quadratic.calls, kBurnIn + kDraws + 1);
  const auto [mean, standard_error] =
      MeanOverChains(loss_sum * (kNBeta / kDraws));
  const double exact = StationaryLlc(kNBeta, o, kRank);
  EXPECT_LE(std::abs(mean - exact), 3 * standard_error)
      << mean << " +- " << standard_error << " vs exact " << exact;
  const double sgld = exact / (1 - o.step_size * a / 4);
  EXPECT_GT(sgld - exact, 5 * standard_error)
      << "the step size is too small to tell MALA from SGLD";

  const std::vector<double> rates = *sampler->AcceptanceRates();
  ASSERT_EQ(rates.size(), static_cast<size_t>(kChains));
  const torch::Tensor counted = (moves / (kBurnIn + kDraws)).cpu();
  for (int64_t c = 0; c < kChains; ++c) {
    EXPECT_DOUBLE_EQ(rates[c], counted[c].item<double>()) << "chain " << c;
    EXPECT_GT(rates[c], 0);
    EXPECT_LT(rates[c], 1);
  }
}

TEST_P(MalaTest, AcceptanceFollowsTheStepSize) {
  const Quadratic quadratic{5};
  const struct {
    double step_size;
    double low, high;
  } cases[] = {{1e-6, 0.99, 1}, {10, 0, 0.01}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.step_size);
    std::unique_ptr<Sampler> sampler = MakeMala(c.step_size, 10, 10, 10);
    EXPECT_TRUE(sampler->AcceptanceRates()->empty());
    torch::Tensor chains = torch::zeros({64, 10}, options());
    for (int t = 0; t < 50; ++t)
      ASSERT_TRUE(sampler->Step(quadratic, chains).ok());
    const std::vector<double> rates = *sampler->AcceptanceRates();
    for (double rate : rates) {
      EXPECT_GE(rate, c.low);
      EXPECT_LE(rate, c.high);
    }
  }
}

TEST_P(MalaTest, ChainsWrittenBetweenStepsAreEvaluatedAgain) {
  const Quadratic quadratic{2};
  std::unique_ptr<Sampler> sampler = MakeMala(1e-2, 1, 1, 3);
  torch::Tensor chains = torch::zeros({2, 3}, options());
  ASSERT_TRUE(sampler->Step(quadratic, chains).ok());
  ASSERT_TRUE(sampler->Step(quadratic, chains).ok());
  EXPECT_EQ(quadratic.calls, 3);
  chains.fill_(2);
  absl::StatusOr<torch::Tensor> losses = sampler->Step(quadratic, chains);
  ASSERT_TRUE(losses.ok()) << losses.status();
  EXPECT_EQ(quadratic.calls, 5);
  // The step began at the written point: L = 2^2 + 2^2.
  EXPECT_TRUE(
      torch::allclose(*losses, torch::full({2}, 8.0, losses->options())));
  torch::Tensor other = torch::zeros({2, 3}, options());
  ASSERT_TRUE(sampler->Step(quadratic, other).ok());
  EXPECT_EQ(quadratic.calls, 7);
}

CURVD_INSTANTIATE_DEVICE_TEST(MalaTest);

}  // namespace
}  // namespace curvd::core

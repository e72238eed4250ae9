// SGNHT on the minimally singular quadratic of ../shared/VALIDATION.md with
// a noisy gradient (exact plus N(0, s^2) per entry, a minibatch's stand-in):
// the momentum then gains an extra temperature epsilon s^2 n_beta^2 / (2 A)
// per unit of friction, which the thermostat must absorb by settling at xi =
// A + epsilon n_beta^2 s^2 / 2 (Ding et al. 2014). With the thermostat acting
// the kinetic temperature averages 1 and w samples exp(-U); without it (as
// in devinterp) the temperature would be 1.5 here.
#include "core/samplers/sgnht.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
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

class SgnhtTest : public DeviceTest {};

TEST_P(SgnhtTest, ThermostatHoldsTheTemperatureAndSamplesTheQuadratic) {
  constexpr int64_t kChains = 256;
  constexpr int64_t kSize = 10;
  constexpr int kRank = 5;
  constexpr int kBurnIn = 1000;
  constexpr int kDraws = 3000;
  constexpr double kNBeta = 1;
  LlcOptions o = SamplerOptions(LlcSampler::kSgnht, 1e-2, 1);
  o.sgnht_diffusion = 1;
  // epsilon s^2 / (2 A) = 0.5: the temperature an idle thermostat leaves.
  const double gradient_noise =
      std::sqrt(2 * o.sgnht_diffusion / o.step_size * 0.5);
  absl::StatusOr<std::unique_ptr<Sampler>> sampler =
      MakeSampler(o, kNBeta, torch::zeros({kSize}, options()),
                  ChainStreams(device(), 6));
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  const Quadratic quadratic{kRank};
  at::Generator minibatch = DeviceGenerator(device(), 7);
  const auto noisy = [&](const torch::Tensor& w) {
    ChainEvaluation evaluation = quadratic(w);
    evaluation.gradients.add_(torch::randn(w.sizes(), minibatch, w.options()),
                              gradient_noise);
    return evaluation;
  };
  torch::Tensor chains = torch::zeros({kChains, kSize}, options());
  torch::Tensor loss_sum = torch::zeros({kChains}, options());
  torch::Tensor temperature_sum = torch::zeros({kChains}, options());
  for (int t = 0; t < kBurnIn + kDraws; ++t) {
    absl::StatusOr<torch::Tensor> losses = (*sampler)->Step(noisy, chains);
    ASSERT_TRUE(losses.ok()) << losses.status();
    if (t < kBurnIn) continue;
    loss_sum += *losses;
    temperature_sum +=
        torch::tensor(*(*sampler)->KineticTemperatures(), options());
  }
  const auto [temperature, temperature_error] =
      MeanOverChains(temperature_sum / kDraws);
  EXPECT_LE(std::abs(temperature - 1), 3 * temperature_error)
      << temperature << " +- " << temperature_error;
  EXPECT_GT(0.5, 10 * temperature_error) << "cannot tell an idle thermostat";

  const auto [mean, standard_error] =
      MeanOverChains(loss_sum * (kNBeta / kDraws));
  const double exact = StationaryLlc(kNBeta, o, kRank);
  // Tolerance: 3 standard errors plus 3% of the value for the O(epsilon)
  // bias of the discretised dynamics (epsilon sqrt(a) = 0.017 with a = 3,
  // and the friction epsilon xi = 0.015 per step).
  EXPECT_LE(std::abs(mean - exact), 3 * standard_error + 0.03 * exact)
      << mean << " +- " << standard_error << " vs exact " << exact;
}

TEST_P(SgnhtTest, KineticTemperatureIsTheMomentumsAfterTheStep) {
  // With no noise (A = 0) and no force, p keeps its N(0, I) start scaled by
  // (1 - epsilon xi) each step and w moves by epsilon p.
  LlcOptions o = SamplerOptions(LlcSampler::kSgnht, 0.1, 0);
  o.sgnht_diffusion = 0;
  absl::StatusOr<std::unique_ptr<Sampler>> sampler = MakeSampler(
      o, 1, torch::zeros({4}, options()), ChainStreams(device(), 2));
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  EXPECT_TRUE((*sampler)->KineticTemperatures()->empty());
  const Quadratic flat{0};
  torch::Tensor chains = torch::zeros({3, 4}, options());
  const torch::Tensor p =
      ChainStreams(device(), 2).Normal({3, 4}, options());
  ASSERT_TRUE((*sampler)->Step(flat, chains).ok());
  // xi starts at A = 0, so the first step leaves p as it was.
  EXPECT_TRUE(torch::allclose(chains, 0.1 * p));
  const std::vector<double> first = *(*sampler)->KineticTemperatures();
  const torch::Tensor expected = p.square().mean(1).cpu();
  ASSERT_EQ(first.size(), 3u);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(first[c], expected[c].item<double>(), 1e-12);
  }
  // Then xi = epsilon (K - 1) acts: p <- (1 - epsilon xi) p.
  ASSERT_TRUE((*sampler)->Step(flat, chains).ok());
  const std::vector<double> second = *(*sampler)->KineticTemperatures();
  for (int c = 0; c < 3; ++c) {
    const double shrink = 1 - 0.1 * 0.1 * (first[c] - 1);
    EXPECT_NEAR(second[c], first[c] * shrink * shrink, 1e-12);
  }
}

CURVD_INSTANTIATE_DEVICE_TEST(SgnhtTest);

}  // namespace
}  // namespace curvd::core

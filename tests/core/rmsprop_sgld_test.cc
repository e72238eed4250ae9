// RMSProp-SGLD against its defining equations (core/samplers/rmsprop_sgld.h)
// step by step with the same noise, and its stationary n_beta E[L] on the
// minimally singular quadratic of ../shared/VALIDATION.md.
#include "core/samplers/rmsprop_sgld.h"

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
using ::curvd::core::testing::StationaryLlc;

class RmspropSgldTest : public DeviceTest {};

TEST_P(RmspropSgldTest, StepsFollowTheDefiningEquationsWithTheSameNoise) {
  constexpr double kNBeta = 3;
  LlcOptions o = SamplerOptions(LlcSampler::kRmspropSgld, 1e-2, 2,
                                /*prior_precision=*/0.5);
  o.rmsprop_alpha = 0.9;
  o.rmsprop_epsilon = 1e-3;
  const torch::Tensor center =
      torch::randn({6}, DeviceGenerator(device(), 7), options());
  absl::StatusOr<std::unique_ptr<Sampler>> sampler =
      MakeSampler(o, kNBeta, center, ChainStreams(device(), 8));
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  ChainStreams same_noise(device(), 8);
  const Quadratic quadratic{4};
  torch::Tensor chains =
      torch::randn({3, 6}, DeviceGenerator(device(), 9), options());
  torch::Tensor w = chains.clone();
  torch::Tensor v;
  for (int t = 0; t < 3; ++t) {
    SCOPED_TRACE(t);
    const torch::Tensor d = kNBeta * quadratic(w).gradients +
                            o.localization * (w - center) +
                            o.prior_precision * w;
    v = t == 0 ? d * d : o.rmsprop_alpha * v + (1 - o.rmsprop_alpha) * d * d;
    const torch::Tensor g = 1 / (torch::sqrt(v) + o.rmsprop_epsilon);
    const torch::Tensor xi = same_noise.Normal({3, 6}, options());
    const torch::Tensor expected_losses = quadratic(w).losses;
    w = w - o.step_size / 2 * g * d + torch::sqrt(o.step_size * g) * xi;
    absl::StatusOr<torch::Tensor> losses = (*sampler)->Step(quadratic, chains);
    ASSERT_TRUE(losses.ok()) << losses.status();
    EXPECT_TRUE(torch::allclose(*losses, expected_losses, 1e-12, 1e-14));
    EXPECT_TRUE(torch::allclose(chains, w, /*rtol=*/1e-12, /*atol=*/1e-14))
        << (chains - w).abs().max().item<double>();
  }
}

TEST_P(RmspropSgldTest, QuadraticStationaryMeanIsTheExactOneForSmallSteps) {
  constexpr int64_t kChains = 256;
  constexpr int64_t kSize = 10;
  constexpr int kRank = 5;
  constexpr int kBurnIn = 2000;
  constexpr int kDraws = 4000;
  constexpr double kNBeta = 10;
  // alpha = 0.999: v's window of 1000 steps is long against the chains'
  // correlation time 2 / (epsilon sqrt(a)) ~ 36 steps, so G hardly follows
  // the chain's own |w|. It must: without a Gamma term a preconditioner that
  // tracks the state samples exp(-U) / G instead (Fokker-Planck), which puts
  // more mass at large |w|. At devinterp's alpha = 0.99 and epsilon = 2e-3 the
  // window is shorter than the correlation time and this mean comes out 49%
  // high (measured), at 0.999 and 2e-3 11% high.
  LlcOptions o = SamplerOptions(LlcSampler::kRmspropSgld, 1e-2, 10);
  o.rmsprop_alpha = 0.999;
  o.rmsprop_epsilon = 1e-8;  // the measurement above was made with it
  const double a = 2 * kNBeta + o.localization;
  // The chains start from exp(-U) itself (constrained coordinates N(0, 1/a),
  // the others N(0, 1/gamma)), so the burn-in (two windows) only has to
  // settle v.
  const torch::Tensor scale = torch::where(
      torch::arange(kSize, options()) < kRank,
      torch::full({kSize}, 1 / std::sqrt(a), options()),
      torch::full({kSize}, 1 / std::sqrt(o.localization), options()));
  torch::Tensor chains =
      torch::randn({kChains, kSize}, DeviceGenerator(device(), 3), options()) *
      scale;
  absl::StatusOr<std::unique_ptr<Sampler>> sampler =
      MakeSampler(o, kNBeta, torch::zeros({kSize}, options()),
                  ChainStreams(device(), 4));
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  const Quadratic quadratic{kRank};
  torch::Tensor loss_sum = torch::zeros({kChains}, options());
  for (int t = 0; t < kBurnIn + kDraws; ++t) {
    absl::StatusOr<torch::Tensor> losses = (*sampler)->Step(quadratic, chains);
    ASSERT_TRUE(losses.ok()) << losses.status();
    if (t >= kBurnIn) loss_sum += *losses;
  }
  const auto [mean, standard_error] =
      MeanOverChains(loss_sum * (kNBeta / kDraws));
  const double exact = StationaryLlc(kNBeta, o, kRank);
  // Tolerance: 3 standard errors plus 5% of the value. With G ~ 1 / sqrt(a)
  // (v ~ E[d^2] = a) a step acts like SGLD's with epsilon G, whose bias
  // 1 / (1 - epsilon G a / 4) is 1.4% here; what is left of G following w
  // adds about 2% (3.2% measured in all).
  EXPECT_LE(std::abs(mean - exact), 3 * standard_error + 0.05 * exact)
      << mean << " +- " << standard_error << " vs exact " << exact;
}

CURVD_INSTANTIATE_DEVICE_TEST(RmspropSgldTest);

}  // namespace
}  // namespace curvd::core

// MakeSampler's checks and what every sampler shares: refused options and
// chains, errors that change nothing, and chains fixed by the seed.
#include "core/objective/linear_operator.h"
#include "core/samplers/sampler.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "tests/core/sampler_testing.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::Quadratic;
using ::curvd::core::testing::SamplerOptions;

class SamplerTest : public DeviceTest {};

constexpr LlcSampler kSamplers[] = {LlcSampler::kSgld, LlcSampler::kRmspropSgld,
                                    LlcSampler::kSgnht, LlcSampler::kMala};

TEST_P(SamplerTest, BadOptionsAreRefusedNamingThem) {
  const torch::Tensor center = torch::zeros({3}, options());
  const struct {
    void (*spoil)(LlcOptions&, double&);
    const char* name;
  } bad[] = {
      {[](LlcOptions& o, double&) { o.step_size = 0; }, "step_size"},
      {[](LlcOptions& o, double&) { o.step_size = -1e-3; }, "step_size"},
      {[](LlcOptions&, double& n_beta) { n_beta = -1; }, "n_beta"},
      {[](LlcOptions&, double& n_beta) { n_beta = 0; }, "n_beta"},
      {[](LlcOptions& o, double&) {
         o.localization = std::numeric_limits<double>::quiet_NaN();
       },
       "localization"},
      {[](LlcOptions& o, double&) { o.localization = -1; }, "localization"},
      {[](LlcOptions& o, double&) { o.prior_precision = -1; },
       "prior_precision"},
      {[](LlcOptions& o, double&) { o.rmsprop_alpha = 1; }, "rmsprop_alpha"},
      {[](LlcOptions& o, double&) { o.rmsprop_alpha = -0.1; }, "rmsprop_alpha"},
      {[](LlcOptions& o, double&) { o.rmsprop_epsilon = 0; },
       "rmsprop_epsilon"},
      {[](LlcOptions& o, double&) { o.sgnht_diffusion = -1; },
       "sgnht_diffusion"},
      {[](LlcOptions& o, double&) {
         o.sgnht_diffusion = std::numeric_limits<double>::infinity();
       },
       "sgnht_diffusion"},
  };
  for (LlcSampler kind : kSamplers) {
    for (const auto& b : bad) {
      LlcOptions o = SamplerOptions(kind, 1e-3, 1);
      double n_beta = 1;
      b.spoil(o, n_beta);
      const absl::Status status =
          MakeSampler(o, n_beta, center, ChainStreams(device(), 1))
              .status();
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << b.name;
      EXPECT_NE(status.message().find(b.name), std::string::npos) << status;
    }
    // The edges of the ranges are accepted.
    LlcOptions edges = SamplerOptions(kind, 1e-3, 0);
    edges.rmsprop_alpha = 0;
    edges.sgnht_diffusion = 0;
    EXPECT_TRUE(
        MakeSampler(edges, 1, center, ChainStreams(device(), 1)).ok());
  }
  const absl::Status matrix =
      MakeSampler(LlcOptions(), 1, torch::zeros({2, 2}, options()),
                  ChainStreams(device(), 1))
          .status();
  EXPECT_EQ(matrix.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(matrix.message().find("center"), std::string::npos) << matrix;
  if (on_cuda()) {
    const absl::Status generator =
        MakeSampler(LlcOptions(), 1, center, ChainStreams(torch::kCPU, 1))
            .status();
    EXPECT_EQ(generator.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(generator.message().find("random streams"), std::string::npos)
        << generator;
  }
}

TEST_P(SamplerTest, BadChainsAndFailedEvaluationsChangeNothing) {
  const Quadratic quadratic{2};
  const torch::Tensor start = torch::ones({2, 3}, options());
  for (LlcSampler kind : kSamplers) {
    SCOPED_TRACE(static_cast<int>(kind));
    absl::StatusOr<std::unique_ptr<Sampler>> sampler = MakeSampler(
        SamplerOptions(kind, 1e-3, 1), 1, torch::zeros({3}, options()),
        ChainStreams(device(), 1));
    ASSERT_TRUE(sampler.ok()) << sampler.status();
    torch::Tensor chains = start.clone();
    torch::Tensor transposed = chains.t();
    const absl::Status shapes =
        (*sampler)->Step(quadratic, transposed).status();
    EXPECT_EQ(shapes.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(shapes.message().find("[3, 2]"), std::string::npos) << shapes;
    torch::Tensor single = chains.to(torch::kFloat32);
    EXPECT_EQ((*sampler)->Step(quadratic, single).status().code(),
              absl::StatusCode::kInvalidArgument);
    const auto failing =
        [](const torch::Tensor&) -> absl::StatusOr<ChainEvaluation> {
      return absl::DataLossError("the shard went away");
    };
    EXPECT_EQ((*sampler)->Step(failing, chains).status().code(),
              absl::StatusCode::kDataLoss);
    const auto misshapen = [](const torch::Tensor& w) {
      return ChainEvaluation{torch::zeros({w.size(0) + 1}, w.options()),
                             torch::zeros_like(w)};
    };
    EXPECT_EQ((*sampler)->Step(misshapen, chains).status().code(),
              absl::StatusCode::kInternal);
    EXPECT_TRUE(torch::equal(chains, start));
    // A sampler's per-chain state then holds it to its number of chains.
    ASSERT_TRUE((*sampler)->Step(quadratic, chains).ok());
    torch::Tensor more = torch::ones({3, 3}, options());
    const absl::Status count = (*sampler)->Step(quadratic, more).status();
    if (kind != LlcSampler::kSgld) {
      EXPECT_EQ(count.code(), absl::StatusCode::kInvalidArgument) << count;
    }
  }
}

TEST_P(SamplerTest, TheSeedFixesTheChains) {
  const Quadratic quadratic{2};
  for (LlcSampler kind : kSamplers) {
    SCOPED_TRACE(static_cast<int>(kind));
    const auto run = [&](uint64_t seed) {
      std::unique_ptr<Sampler> sampler = *MakeSampler(
          SamplerOptions(kind, 1e-2, 1), 1, torch::zeros({5}, options()),
          ChainStreams(device(), seed));
      torch::Tensor chains = torch::full({4, 5}, 0.5, options());
      for (int t = 0; t < 5; ++t)
        EXPECT_TRUE(sampler->Step(quadratic, chains).ok());
      return chains;
    };
    const torch::Tensor first = run(3);
    EXPECT_TRUE(torch::equal(first, run(3)));
    EXPECT_FALSE(torch::equal(first, run(4)));
    // Each chain its own noise.
    EXPECT_FALSE(torch::equal(first[0], first[1]));
  }
}

CURVD_INSTANTIATE_DEVICE_TEST(SamplerTest);

}  // namespace
}  // namespace curvd::core

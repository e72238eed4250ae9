// ChainStreams: a chain's draws depend on the seed and its index alone.
#include "core/samplers/chain_streams.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;

class ChainStreamsTest : public DeviceTest {};

TEST_P(ChainStreamsTest, AChainDrawsTheSameAloneOrBesideOthers) {
  ChainStreams all(device(), 7);
  ChainStreams from_two(device(), 7, /*first_chain=*/2);
  const torch::Tensor normal = all.Normal({4, 50}, options());
  const torch::Tensor uniform = all.Uniform({4, 50}, options());
  EXPECT_TRUE(torch::equal(from_two.Normal({2, 50}, options()),
                           normal.narrow(0, 2, 2)));
  EXPECT_TRUE(torch::equal(from_two.Uniform({2, 50}, options()),
                           uniform.narrow(0, 2, 2)));
  // Rows are distinct streams, and a draw advances them.
  EXPECT_FALSE(torch::equal(normal[0], normal[1]));
  EXPECT_FALSE(torch::equal(all.Normal({4, 50}, options()), normal));
  EXPECT_TRUE(uniform.ge(0).all().item<bool>());
  EXPECT_TRUE(uniform.lt(1).all().item<bool>());
  // Another seed, other numbers; the same seed, the same.
  EXPECT_FALSE(torch::equal(ChainStreams(device(), 8).Normal({4, 50}, options()),
                            ChainStreams(device(), 7).Normal({4, 50}, options())));
  EXPECT_TRUE(torch::equal(ChainStreams(device(), 7).Normal({4, 50}, options()),
                           ChainStreams(device(), 7).Normal({4, 50}, options())));
}

TEST_P(ChainStreamsTest, DrawsAreStandardNormalWithinStandardErrors) {
  // 4 x 25,000 draws: mean 0 and variance 1 within 4 standard errors
  // (1 / sqrt(n) and sqrt(2 / n)); seed fixed.
  const torch::Tensor x = ChainStreams(device(), 3).Normal({4, 25000}, options());
  const double n = 25000;
  for (int64_t r = 0; r < 4; ++r) {
    EXPECT_LT(std::abs(x[r].mean().item<double>()), 4 / std::sqrt(n));
    EXPECT_LT(std::abs(x[r].var().item<double>() - 1), 4 * std::sqrt(2 / n));
  }
}

TEST_P(ChainStreamsTest, OptionsOfAnotherDeviceThrow) {
  if (!on_cuda()) GTEST_SKIP() << "needs a second kind of device";
  ChainStreams streams(device(), 1);
  EXPECT_THROW(streams.Normal({2, 3}, torch::TensorOptions().dtype(
                                          torch::kFloat64)),
               c10::Error);
}

CURVD_INSTANTIATE_DEVICE_TEST(ChainStreamsTest);

}  // namespace
}  // namespace curvd::core

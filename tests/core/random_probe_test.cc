// The probes of RandomProbe: splitmix64 words expanded on the device, the same
// vectors on every device, with the right distribution.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/objective/linear_operator.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

class RandomProbeTest : public testing::DeviceTest {};

// splitmix64 as published (Steele, Lea and Flood 2014), on uint64.
std::vector<uint64_t> ScalarSplitMix64(uint64_t state, int count) {
  std::vector<uint64_t> out;
  for (int i = 0; i < count; ++i) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    out.push_back(z ^ (z >> 31));
  }
  return out;
}

std::vector<uint64_t> Words(const torch::Tensor& t) {
  const torch::Tensor cpu = t.cpu().contiguous();
  const int64_t* data = cpu.data_ptr<int64_t>();
  std::vector<uint64_t> out;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    out.push_back(static_cast<uint64_t>(data[i]));
  }
  return out;
}

TEST_P(RandomProbeTest, WordsAreSplitMix64) {
  // The first outputs of seed 0, as every splitmix64 implementation gives them.
  const std::vector<uint64_t> seed0 = Words(SplitMix64Words(0, 3, device()));
  EXPECT_EQ(seed0[0], 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(seed0[1], 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(seed0[2], 0x06C45D188009454FULL);
  // A key with the top bit set, so that the logical shifts matter.
  const uint64_t key = 0xF0E1D2C3B4A59687ULL;
  EXPECT_EQ(Words(SplitMix64Words(key, 1000, device())),
            ScalarSplitMix64(key, 1000));
}

TEST_P(RandomProbeTest, RademacherEntriesAreTheWordsBits) {
  at::Generator keys = SeededGenerator(5);
  const uint64_t key = keys.get<at::CPUGeneratorImpl>()->random64();
  at::Generator generator = SeededGenerator(5);
  // 130 entries: two whole words and two bits of a third.
  const torch::Tensor probe = RandomProbe(
      130, ProbeDistribution::kRademacher, generator, options()).cpu();
  const std::vector<uint64_t> words = ScalarSplitMix64(key, 3);
  for (int64_t i = 0; i < 130; ++i) {
    const double want = ((words[i / 64] >> (i % 64)) & 1) ? 1.0 : -1.0;
    ASSERT_EQ(probe[i].item<double>(), want) << "entry " << i;
  }
}

TEST_P(RandomProbeTest, BlocksAreSingleProbesInOrder) {
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    at::Generator single = SeededGenerator(7);
    std::vector<torch::Tensor> rows;
    for (int i = 0; i < 5; ++i) {
      rows.push_back(RandomProbe(1001, distribution, single, options()));
    }
    at::Generator blocks = SeededGenerator(7);
    const torch::Tensor first =
        RandomProbes(2, 1001, distribution, blocks, options());
    const torch::Tensor rest =
        RandomProbes(3, 1001, distribution, blocks, options());
    EXPECT_EQ(first.device(), device());
    EXPECT_EQ(first.scalar_type(), torch::kFloat64);
    EXPECT_TRUE(torch::equal(torch::cat({first, rest}), torch::stack(rows)));
  }
}

TEST_P(RandomProbeTest, SameProbesOnEveryDevice) {
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    at::Generator here = SeededGenerator(11);
    at::Generator cpu = SeededGenerator(11);
    const torch::Tensor got =
        RandomProbes(3, 777, distribution, here, options()).cpu();
    const torch::Tensor want = RandomProbes(
        3, 777, distribution, cpu, torch::TensorOptions(torch::kFloat64));
    if (distribution == ProbeDistribution::kRademacher) {
      EXPECT_TRUE(torch::equal(got, want));
    } else {
      // log, sqrt, cos and sin may round differently on another device.
      EXPECT_TRUE(torch::allclose(got, want, /*rtol=*/1e-13, /*atol=*/1e-13));
    }
  }
}

TEST_P(RandomProbeTest, Float32ProbesAreTheRoundedFloat64Ones) {
  at::Generator a = SeededGenerator(3);
  at::Generator b = SeededGenerator(3);
  const torch::Tensor single = RandomProbes(
      4, 501, ProbeDistribution::kGaussian, a, options(torch::kFloat32));
  const torch::Tensor dbl =
      RandomProbes(4, 501, ProbeDistribution::kGaussian, b, options());
  EXPECT_EQ(single.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(single, dbl.to(torch::kFloat32)));
}

TEST_P(RandomProbeTest, EntriesHaveTheirDistribution) {
  constexpr int64_t kSize = 200001;  // odd: the last Gaussian pair is cut
  at::Generator generator = SeededGenerator(13);
  const torch::Tensor signs = RandomProbe(
      kSize, ProbeDistribution::kRademacher, generator, options());
  EXPECT_TRUE(torch::equal(signs.abs(), torch::ones_like(signs)));
  // Mean of n signs has standard deviation 1/sqrt(n) ~ 0.0022.
  EXPECT_LT(std::abs(signs.mean().item<double>()), 0.012);
  // Neighbours independent: their products are signs too.
  const double lag1 =
      (signs.narrow(0, 0, kSize - 1) * signs.narrow(0, 1, kSize - 1))
          .mean()
          .item<double>();
  EXPECT_LT(std::abs(lag1), 0.012);

  const torch::Tensor normals =
      RandomProbe(kSize, ProbeDistribution::kGaussian, generator, options());
  EXPECT_EQ(normals.numel(), kSize);
  EXPECT_LT(std::abs(normals.mean().item<double>()), 0.012);
  EXPECT_NEAR(normals.var().item<double>(), 1.0, 0.02);
  // Fourth moment 3 for a normal; a uniform or sign-like mistake gives <= 1.8.
  EXPECT_NEAR(normals.pow(4).mean().item<double>(), 3.0, 0.1);
  // The Box-Muller pair's two halves are uncorrelated.
  const torch::Tensor pairs = normals.narrow(0, 0, kSize - 1).reshape({-1, 2});
  EXPECT_LT(std::abs((pairs.select(1, 0) * pairs.select(1, 1))
                         .mean()
                         .item<double>()),
            0.02);
  // Another probe of the same stream is another vector.
  const torch::Tensor next =
      RandomProbe(kSize, ProbeDistribution::kGaussian, generator, options());
  EXPECT_LT(std::abs((normals * next).mean().item<double>()), 0.012);
}

CURVD_INSTANTIATE_DEVICE_TEST(RandomProbeTest);

}  // namespace
}  // namespace curvd::core

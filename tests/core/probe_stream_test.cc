// ProbeStream hands out RandomProbe's vectors, in order, whatever the block
// sizes and whether a block drawn ahead is used.
#include <torch/torch.h>

#include "core/linear_operator.h"
#include "gtest/gtest.h"
#include "toy_models.h"

namespace curvd::core {
namespace {

class ProbeStreamTest : public testing::DeviceTest {};

// The first `count` probes of the seed, one RandomProbe call each, on the CPU.
torch::Tensor Reference(int count, int64_t size, ProbeDistribution distribution,
                        uint64_t seed) {
  at::Generator generator = SeededGenerator(seed);
  std::vector<torch::Tensor> rows;
  for (int i = 0; i < count; ++i) {
    rows.push_back(RandomProbe(size, distribution, generator,
                               torch::TensorOptions().dtype(torch::kFloat64)));
  }
  return torch::stack(rows);
}

TEST_P(ProbeStreamTest, BlocksAreRandomProbesInOrder) {
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    ProbeStream stream(1000, distribution, /*seed=*/7, options());
    // Blocks of 3, 3, then 2 of the 3 drawn ahead (one kept for later), 4.
    std::vector<torch::Tensor> blocks;
    blocks.push_back(stream.Next(3, 3));
    blocks.push_back(stream.Next(3, 3));
    blocks.push_back(stream.Next(2, 4));
    blocks.push_back(stream.Next(4, 0));
    const torch::Tensor got = torch::cat(blocks).cpu();
    EXPECT_EQ(blocks[0].device(), device());
    EXPECT_EQ(blocks[0].scalar_type(), torch::kFloat64);
    EXPECT_TRUE(torch::equal(got, Reference(12, 1000, distribution, 7)));
  }
}

TEST_P(ProbeStreamTest, Float32ProbesAreTheRoundedFloat64Ones) {
  ProbeStream stream(500, ProbeDistribution::kGaussian, 3,
                     options(torch::kFloat32));
  const torch::Tensor got = stream.Next(5, 0);
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(
      got.cpu(),
      Reference(5, 500, ProbeDistribution::kGaussian, 3).to(torch::kFloat32)));
}

CURVD_INSTANTIATE_DEVICE_TEST(ProbeStreamTest);

}  // namespace
}  // namespace curvd::core

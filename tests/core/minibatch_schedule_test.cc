// The chains' minibatches: permutations per chain and epoch, B a step.
#include "core/samplers/minibatch_schedule.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/objective/linear_operator.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;

class MinibatchScheduleTest : public DeviceTest {};

TEST_P(MinibatchScheduleTest, EachEpochOfEachChainIsAPermutationPrefix) {
  constexpr int64_t kChains = 3;
  constexpr int64_t kSamples = 10;
  constexpr int64_t kBatch = 3;  // 3 steps an epoch, one sample skipped
  MinibatchSchedule schedule(kChains, kSamples, kBatch,
                             ChainStreams(device(), 5));
  for (int epoch = 0; epoch < 4; ++epoch) {
    std::vector<torch::Tensor> steps;
    for (int s = 0; s < 3; ++s) {
      const torch::Tensor batch = schedule.Next();
      ASSERT_EQ(batch.sizes(), (std::vector<int64_t>{kChains, kBatch}));
      ASSERT_EQ(batch.scalar_type(), torch::kInt64);
      ASSERT_EQ(batch.device(), device());
      steps.push_back(batch.cpu());
    }
    const torch::Tensor epoch_indices = torch::cat(steps, 1);  // [C, 9]
    for (int64_t c = 0; c < kChains; ++c) {
      const torch::Tensor row = std::get<0>(epoch_indices[c].sort());
      EXPECT_EQ(std::get<0>(torch::unique_consecutive(row)).numel(), 9)
          << "chain " << c << " repeats a sample within epoch " << epoch;
      EXPECT_GE(row.min().item<int64_t>(), 0);
      EXPECT_LT(row.max().item<int64_t>(), kSamples);
    }
  }
}

TEST_P(MinibatchScheduleTest, ChainsDrawDifferentOrdersAndASeedRepeats) {
  MinibatchSchedule a(2, 1000, 100, ChainStreams(device(), 9));
  MinibatchSchedule b(2, 1000, 100, ChainStreams(device(), 9));
  MinibatchSchedule c(2, 1000, 100, ChainStreams(device(), 10));
  const torch::Tensor first = a.Next();
  EXPECT_TRUE(torch::equal(first, b.Next()));
  EXPECT_FALSE(torch::equal(first, c.Next()));
  EXPECT_FALSE(torch::equal(first[0], first[1]));
}

TEST_P(MinibatchScheduleTest, AWholeShardBatchIsEveryIndexEachStep) {
  MinibatchSchedule schedule(2, 7, 7, ChainStreams(device(), 1));
  for (int s = 0; s < 3; ++s) {
    const torch::Tensor batch = std::get<0>(schedule.Next().cpu().sort(1));
    EXPECT_TRUE(torch::equal(batch[1], torch::arange(7)));
  }
}

CURVD_INSTANTIATE_DEVICE_TEST(MinibatchScheduleTest);

}  // namespace
}  // namespace curvd::core

// RecordDeviceGraph: a replay recomputes the recorded work from what its
// input buffers hold now; warmup runs are eager; work that synchronises with
// the host cannot be recorded and says so, leaving the device usable. On the
// CPU there are no graphs. RunSideBySide runs every body once, also inside a
// recording.
#include "core/engine/device_graph.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::testing::HasSubstr;

class DeviceGraphTest : public DeviceTest {};

TEST_P(DeviceGraphTest, ReplaysReadTheInputBuffersAsTheyAreNow) {
  EXPECT_EQ(DeviceGraphsAvailable(device()), on_cuda());
  const torch::Tensor a = torch::arange(6, options()).view({2, 3});
  const torch::Tensor b = torch::full({3}, 0.5, options());
  torch::Tensor out;
  int runs = 0;
  absl::StatusOr<std::unique_ptr<DeviceGraph>> graph =
      RecordDeviceGraph(device(), /*warmup=*/2, [&] {
        ++runs;
        out = (a * 2 + b).sum(0);
      });
  if (!on_cuda()) {
    EXPECT_EQ(graph.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_THAT(graph.status().message(), HasSubstr("cpu"));
    return;
  }
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(runs, 3);  // two warmup runs and the recording
  (*graph)->Replay();
  EXPECT_TRUE(torch::equal(out.cpu(), (a * 2 + b).sum(0).cpu()));
  for (double shift : {1.0, -3.5}) {
    a.add_(shift);
    (*graph)->Replay();
    EXPECT_TRUE(torch::equal(out.cpu(), (a * 2 + b).sum(0).cpu()));
  }
  EXPECT_EQ(runs, 3);  // replays run no host code
}

TEST_P(DeviceGraphTest, WorkThatSynchronisesIsRefusedAndTheDeviceStaysUsable) {
  if (!on_cuda()) GTEST_SKIP() << "graphs are CUDA's";
  const torch::Tensor a = torch::ones({4}, options());
  double seen = 0;
  absl::StatusOr<std::unique_ptr<DeviceGraph>> graph = RecordDeviceGraph(
      device(), 1, [&] { seen = a.sum().item<double>(); });
  EXPECT_EQ(graph.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(graph.status().message(), HasSubstr("recording"));
  EXPECT_EQ(seen, 4);  // the warmup ran
  EXPECT_EQ((a * 3).sum().item<double>(), 12);
  // And a later recording works.
  torch::Tensor out;
  absl::StatusOr<std::unique_ptr<DeviceGraph>> next =
      RecordDeviceGraph(device(), 1, [&] { out = a + 1; });
  ASSERT_TRUE(next.ok()) << next.status();
  (*next)->Replay();
  EXPECT_TRUE(torch::equal(out.cpu(), torch::full({4}, 2.0, torch::kFloat64)));
}

TEST_P(DeviceGraphTest, ASideBySideBranchThatSynchronisesIsRefusedNotFatal) {
  if (!on_cuda()) GTEST_SKIP() << "graphs are CUDA's";
  const torch::Tensor a = torch::ones({2, 4}, options());
  torch::Tensor sums = torch::zeros({2}, options());
  bool recording = false;
  absl::StatusOr<std::unique_ptr<DeviceGraph>> graph =
      RecordDeviceGraph(device(), 1, [&] {
        RunSideBySide(device(), 2, [&](int i) {
          sums[i].copy_(a[i].sum());
          // Only the recording synchronises: the warmup is eager.
          if (recording) (void)sums[i].item<double>();
        });
        recording = true;
      });
  EXPECT_EQ(graph.status().code(), absl::StatusCode::kFailedPrecondition);
  // The device stays usable, side by side too.
  RunSideBySide(device(), 2, [&](int i) { sums[i].copy_(a[i].sum() * 2); });
  EXPECT_TRUE(torch::equal(sums.cpu(), torch::full({2}, 8.0, torch::kFloat64)));
}

TEST_P(DeviceGraphTest, AWarmupExceptionPropagates) {
  if (!on_cuda()) GTEST_SKIP() << "graphs are CUDA's";
  EXPECT_THROW((void)RecordDeviceGraph(device(), 1,
                                       [] { TORCH_CHECK(false, "no"); }),
               c10::Error);
  EXPECT_EQ(torch::ones({2}, options()).sum().item<double>(), 2);
}

// Body i writes row i: every row is written once, eagerly and (on CUDA)
// replayed as parallel branches of a graph.
TEST_P(DeviceGraphTest, SideBySideBodiesEachWriteTheirRow) {
  const torch::Tensor a = torch::arange(3, options());
  const torch::Tensor rows = torch::zeros({4, 3}, options());
  std::vector<int> calls;
  const auto work = [&] {
    RunSideBySide(device(), 4, [&](int i) {
      calls.push_back(i);
      rows[i].copy_(a * (i + 1));
    });
  };
  const auto expected = [&] {
    return torch::arange(1, 5, options()).unsqueeze(1) * a.unsqueeze(0);
  };
  work();
  EXPECT_EQ(calls, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_TRUE(torch::equal(rows.cpu(), expected().cpu()));
  if (!on_cuda()) return;
  absl::StatusOr<std::unique_ptr<DeviceGraph>> graph =
      RecordDeviceGraph(device(), 1, work);
  ASSERT_TRUE(graph.ok()) << graph.status();
  a.add_(10);
  rows.zero_();
  (*graph)->Replay();
  EXPECT_TRUE(torch::equal(rows.cpu(), expected().cpu()));
}

TEST_P(DeviceGraphTest, ASideBySideExceptionPropagatesAfterTheBranchesRan) {
  const torch::Tensor rows = torch::zeros({3}, options());
  EXPECT_THROW(RunSideBySide(device(), 3,
                             [&](int i) {
                               TORCH_CHECK(i < 2, "body ", i, " throws");
                               rows[i].fill_(1.0);
                             }),
               c10::Error);
  EXPECT_TRUE(torch::equal(rows.cpu(),
                           torch::tensor({1.0, 1.0, 0.0}, torch::kFloat64)));
}

CURVD_INSTANTIATE_DEVICE_TEST(DeviceGraphTest);

}  // namespace
}  // namespace curvd::core

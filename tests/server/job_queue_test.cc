#include "server/job_queue.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace curvd::server {
namespace {

Job MakeJob(const std::string& run, int i,
            const std::string& device_class = "") {
  return Job{run + "/m" + std::to_string(i), run, device_class};
}

TEST(JobQueueTest, ServesRunsRoundRobin) {
  JobQueue queue(16);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(queue.Push(MakeJob("runs/a", i)).ok());
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(queue.Push(MakeJob("runs/b", i)).ok());
  ASSERT_TRUE(queue.Push(MakeJob("runs/c", 0)).ok());
  std::vector<std::string> order;
  for (int i = 0; i < 7; ++i)
    order.push_back(queue.Pop("cpu")->measurement_name);
  EXPECT_EQ(order, (std::vector<std::string>{
                       "runs/a/m0", "runs/b/m0", "runs/c/m0", "runs/a/m1",
                       "runs/b/m1", "runs/a/m2", "runs/a/m3"}));
  EXPECT_EQ(queue.size(), 0u);
}

TEST(JobQueueTest, RejectsBeyondCapacityUnlessRecovering) {
  size_t depth = 0;
  JobQueue queue(2, [&](size_t d) { depth = d; });
  ASSERT_TRUE(queue.Push(MakeJob("runs/a", 0)).ok());
  ASSERT_TRUE(queue.Push(MakeJob("runs/a", 1)).ok());
  absl::Status full = queue.Push(MakeJob("runs/b", 0));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(queue.Push(MakeJob("runs/b", 0), /*over_capacity_ok=*/true).ok());
  EXPECT_EQ(depth, 3u);
}

TEST(JobQueueTest, RemoveTakesAQueuedJobOut) {
  JobQueue queue(8);
  ASSERT_TRUE(queue.Push(MakeJob("runs/a", 0)).ok());
  ASSERT_TRUE(queue.Push(MakeJob("runs/b", 0)).ok());
  EXPECT_TRUE(queue.Remove("runs/a/m0"));
  EXPECT_FALSE(queue.Remove("runs/a/m0"));
  EXPECT_EQ(queue.Pop("cpu")->measurement_name, "runs/b/m0");
  EXPECT_EQ(queue.size(), 0u);
}

TEST(JobQueueTest, MatchesDeviceClass) {
  JobQueue queue(8);
  ASSERT_TRUE(queue.Push(MakeJob("runs/a", 0, "cuda")).ok());
  ASSERT_TRUE(queue.Push(MakeJob("runs/a", 1, "cpu")).ok());
  EXPECT_EQ(queue.Pop("cpu")->measurement_name, "runs/a/m1");
  EXPECT_EQ(queue.Pop("cuda:1")->measurement_name, "runs/a/m0");
}

TEST(JobQueueTest, CloseWakesWaitingWorkersAndRefusesPushes) {
  JobQueue queue(8);
  absl::Notification popped;
  bool got_job = true;
  std::thread worker([&] {
    got_job = queue.Pop("cpu").has_value();
    popped.Notify();
  });
  EXPECT_FALSE(popped.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  queue.Close();
  worker.join();
  EXPECT_FALSE(got_job);
  EXPECT_EQ(queue.Push(MakeJob("runs/a", 0)).code(),
            absl::StatusCode::kUnavailable);
}

TEST(JobQueueTest, DeviceClassOfStripsTheIndex) {
  EXPECT_EQ(DeviceClassOf("cuda:3"), "cuda");
  EXPECT_EQ(DeviceClassOf("cpu"), "cpu");
}

}  // namespace
}  // namespace curvd::server

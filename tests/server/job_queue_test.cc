#include "server/job_queue.h"

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace curvd::server {
namespace {

Job MakeJob(const std::string& run, int i,
            const std::string& device_class = "") {
  return Job{run + "/m" + std::to_string(i), run, device_class, "", ""};
}

// Job `name` of run "runs/a" that loads model `model` and the shard "shard".
Job ModelJob(const std::string& name, const std::string& model) {
  return Job{name, "runs/a", "", model, "shard"};
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

// Two devices, each busy with the checkpoint it took first: the jobs of a
// model go to the device that holds it, out of fair order, and are held back
// from the other device (the affinity wait is long).
TEST(JobQueueTest, TakesTheJobsOfTheModelItHolds) {
  JobQueue queue(16, nullptr, absl::Hours(1));
  ASSERT_TRUE(queue.Push(ModelJob("c1/sharpness", "m1")).ok());
  EXPECT_EQ(queue.Pop("cuda:0")->measurement_name, "c1/sharpness");
  ASSERT_TRUE(queue.Push(ModelJob("c2/sharpness", "m2")).ok());
  EXPECT_EQ(queue.Pop("cuda:1")->measurement_name, "c2/sharpness");
  for (const std::string kind : {"trace", "trace_h3", "hutchpp"}) {
    ASSERT_TRUE(queue.Push(ModelJob("c2/" + kind, "m2")).ok());
    ASSERT_TRUE(queue.Push(ModelJob("c1/" + kind, "m1")).ok());
  }
  std::vector<std::string> cuda0;
  std::vector<std::string> cuda1;
  for (int i = 0; i < 3; ++i) {
    cuda0.push_back(queue.Pop("cuda:0")->measurement_name);
    cuda1.push_back(queue.Pop("cuda:1")->measurement_name);
  }
  EXPECT_EQ(cuda0, (std::vector<std::string>{"c1/trace", "c1/trace_h3",
                                             "c1/hutchpp"}));
  EXPECT_EQ(cuda1, (std::vector<std::string>{"c2/trace", "c2/trace_h3",
                                             "c2/hutchpp"}));
}

// No starvation: a job held back for its busy device goes to an idle one once
// the affinity wait has passed since it was queued.
TEST(JobQueueTest, AnIdleDeviceTakesAHeldBackJobAfterTheAffinityWait) {
  const absl::Duration wait = absl::Milliseconds(200);
  JobQueue queue(16, nullptr, wait);
  ASSERT_TRUE(queue.Push(ModelJob("c1/sharpness", "m1")).ok());
  ASSERT_TRUE(queue.Pop("cuda:0").has_value());  // cuda:0 stays busy
  const absl::Time queued = absl::Now();
  ASSERT_TRUE(queue.Push(ModelJob("c1/trace", "m1")).ok());
  EXPECT_EQ(queue.Pop("cuda:1")->measurement_name, "c1/trace");
  EXPECT_GE(absl::Now() - queued, wait);
  EXPECT_LT(absl::Now() - queued, wait + absl::Seconds(5));
}

// The same for a device that was already waiting in Pop when the job came.
TEST(JobQueueTest, AWaitingDeviceTakesAHeldBackJobAfterTheAffinityWait) {
  const absl::Duration wait = absl::Milliseconds(200);
  JobQueue queue(16, nullptr, wait);
  ASSERT_TRUE(queue.Push(ModelJob("c1/sharpness", "m1")).ok());
  ASSERT_TRUE(queue.Pop("cuda:0").has_value());  // cuda:0 stays busy
  std::optional<Job> taken;
  absl::Time taken_time;
  std::thread idle([&] {
    taken = queue.Pop("cuda:1");
    taken_time = absl::Now();
  });
  absl::SleepFor(absl::Milliseconds(50));  // cuda:1 waits on an empty queue
  const absl::Time queued = absl::Now();
  ASSERT_TRUE(queue.Push(ModelJob("c1/trace", "m1")).ok());
  idle.join();
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->measurement_name, "c1/trace");
  EXPECT_GE(taken_time - queued, wait);
}

// Released from its wait, a claimed job still goes after an unclaimed one,
// though it is ahead in fair order; a shard alone claims nothing.
TEST(JobQueueTest, AnUnclaimedJobGoesBeforeAReleasedClaimedOne) {
  JobQueue queue(16, nullptr, absl::ZeroDuration());
  ASSERT_TRUE(queue.Push(Job{"c1/sharpness", "runs/a", "", "m1", "s"}).ok());
  ASSERT_TRUE(queue.Pop("cuda:0").has_value());  // holds m1 and s; busy
  ASSERT_TRUE(queue.Push(Job{"c1/trace", "runs/a", "", "m1", "s"}).ok());
  ASSERT_TRUE(queue.Push(Job{"c2/sharpness", "runs/a", "", "m2", "s"}).ok());
  EXPECT_EQ(queue.Pop("cuda:1")->measurement_name, "c2/sharpness");
  EXPECT_EQ(queue.Pop("cuda:1")->measurement_name, "c1/trace");
}

// No starvation by affinity alone: a cold job is overtaken by warm ones at
// most kMaxOvertakes times.
TEST(JobQueueTest, ServesAColdJobAfterMaxOvertakes) {
  JobQueue queue(64);
  ASSERT_TRUE(queue.Push(ModelJob("warm/0", "m1")).ok());
  ASSERT_TRUE(queue.Pop("cpu").has_value());  // cpu holds m1
  ASSERT_TRUE(queue.Push(Job{"cold", "runs/b", "", "m2", "s2"}).ok());
  for (int i = 1; i <= JobQueue::kMaxOvertakes + 2; ++i) {
    ASSERT_TRUE(queue.Push(ModelJob("warm/" + std::to_string(i), "m1")).ok());
  }
  std::vector<std::string> order;
  for (int i = 0; i < JobQueue::kMaxOvertakes + 3; ++i) {
    order.push_back(queue.Pop("cpu")->measurement_name);
  }
  std::vector<std::string> expected;
  for (int i = 1; i <= JobQueue::kMaxOvertakes; ++i) {
    expected.push_back("warm/" + std::to_string(i));
  }
  expected.push_back("cold");
  for (int i = JobQueue::kMaxOvertakes + 1; i <= JobQueue::kMaxOvertakes + 2;
       ++i) {
    expected.push_back("warm/" + std::to_string(i));
  }
  EXPECT_EQ(order, expected);
}

// Warmth: the model counts more than the shard; among equally warm jobs the
// fair order decides.
TEST(JobQueueTest, PrefersTheHeldModelToTheHeldShard) {
  JobQueue queue(16);
  ASSERT_TRUE(queue.Push(Job{"first", "runs/a", "", "m1", "s1"}).ok());
  ASSERT_TRUE(queue.Pop("cpu").has_value());
  ASSERT_TRUE(queue.Push(Job{"cold", "runs/a", "", "m2", "s2"}).ok());
  ASSERT_TRUE(queue.Push(Job{"shard", "runs/a", "", "m3", "s1"}).ok());
  ASSERT_TRUE(queue.Push(Job{"model", "runs/a", "", "m1", "s3"}).ok());
  ASSERT_TRUE(queue.Push(Job{"both", "runs/a", "", "m1", "s1"}).ok());
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i)
    order.push_back(queue.Pop("cpu")->measurement_name);
  EXPECT_EQ(order,
            (std::vector<std::string>{"both", "model", "shard", "cold"}));
}

TEST(JobQueueTest, DeviceClassOfStripsTheIndex) {
  EXPECT_EQ(DeviceClassOf("cuda:3"), "cuda");
  EXPECT_EQ(DeviceClassOf("cpu"), "cpu");
}

// Waits until `count` devices of `device_class` are idle in Pop.
void AwaitIdle(const JobQueue& queue, const std::string& device_class,
               int count) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (queue.Idle(device_class) < count && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(queue.Idle(device_class), count);
}

// A split takes the devices of its class that wait in Pop, and they take no
// job until released.
TEST(JobQueueTest, ReservedIdleDevicesTakeNoJobUntilReleased) {
  JobQueue queue(16);
  std::vector<std::optional<Job>> taken(3);
  std::vector<std::thread> workers;
  const std::vector<std::string> devices = {"cuda:0", "cuda:1", "cpu"};
  for (size_t i = 0; i < devices.size(); ++i) {
    workers.emplace_back([&, i] { taken[i] = queue.Pop(devices[i]); });
  }
  AwaitIdle(queue, "cuda", 2);
  AwaitIdle(queue, "cpu", 1);
  // cuda:2 took a job and is busy: not in Pop, so never reserved.
  const std::vector<std::string> reserved =
      queue.ReserveIdle("cuda:2", /*even_if_queued=*/false, /*most=*/8);
  EXPECT_EQ(reserved, (std::vector<std::string>{"cuda:0", "cuda:1"}));
  EXPECT_EQ(queue.Idle("cuda"), 0);
  EXPECT_TRUE(queue.ReserveIdle("cuda:3", false, 8).empty());  // none left
  ASSERT_TRUE(queue.Push(MakeJob("runs/a", 0, "cuda")).ok());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(queue.size(), 1u);  // the cuda devices are reserved
  queue.Release(reserved);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (queue.size() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(queue.size(), 0u);
  queue.Close();
  for (std::thread& worker : workers) worker.join();
  EXPECT_EQ(taken[0].has_value() + taken[1].has_value(), 1);
  EXPECT_FALSE(taken[2].has_value());  // the cpu took nothing
}

// An automatic split leaves idle devices to the queued work they could take
// (here a job held back for its model's busy device); a forced one does not.
TEST(JobQueueTest, QueuedWorkKeepsItsDevicesFromAnAutomaticSplit) {
  JobQueue queue(16, nullptr, absl::Hours(1));
  ASSERT_TRUE(queue.Push(ModelJob("c1/sharpness", "m1")).ok());
  ASSERT_TRUE(queue.Pop("cuda:1").has_value());  // cuda:1 holds m1, busy
  ASSERT_TRUE(queue.Push(ModelJob("c1/trace", "m1")).ok());
  std::optional<Job> taken;
  std::thread idle([&] { taken = queue.Pop("cuda:0"); });
  AwaitIdle(queue, "cuda", 1);
  EXPECT_TRUE(queue.ReserveIdle("cuda:2", /*even_if_queued=*/false, 8).empty());
  const std::vector<std::string> forced =
      queue.ReserveIdle("cuda:2", /*even_if_queued=*/true, 8);
  EXPECT_EQ(forced, std::vector<std::string>{"cuda:0"});
  queue.Release(forced);
  queue.Close();
  idle.join();
}

// A split reserves no more devices than it asks for, and a reserved worker
// stays in Pop after Close until it is released (its engine is in use).
TEST(JobQueueTest, ReservesAtMostWhatItIsAskedAndOutlastsClose) {
  JobQueue queue(16);
  std::atomic<int> returned{0};
  std::vector<std::thread> workers;
  for (const std::string device : {"cuda:0", "cuda:1"}) {
    workers.emplace_back([&queue, &returned, device] {
      EXPECT_FALSE(queue.Pop(device).has_value());
      ++returned;
    });
  }
  AwaitIdle(queue, "cuda", 2);
  const std::vector<std::string> reserved =
      queue.ReserveIdle("cuda:2", /*even_if_queued=*/false, /*most=*/1);
  EXPECT_EQ(reserved, std::vector<std::string>{"cuda:0"});
  EXPECT_EQ(queue.Idle("cuda"), 1);
  queue.Close();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (returned.load() < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(returned.load(), 1);  // cuda:1 left; cuda:0 waits for Release
  queue.Release(reserved);
  for (std::thread& worker : workers) worker.join();
  EXPECT_EQ(returned.load(), 2);
}

}  // namespace
}  // namespace curvd::server

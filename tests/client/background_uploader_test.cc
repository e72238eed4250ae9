#include "client/background_uploader.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Records what the background thread processed, and can hold it inside the
// processor until the test releases it.
class Recorder {
 public:
  CheckpointProcessor Processor() {
    return [this](const PendingCheckpoint& c) -> absl::Status {
      {
        absl::MutexLock lock(&mu_);
        started_.push_back(c.step);
      }
      if (c.step == hold_step_) {
        holding_.Notify();
        release_.WaitForNotification();
      }
      absl::MutexLock lock(&mu_);
      processed_.push_back(c.step);
      if (c.step == fail_step_) return absl::UnavailableError("server gone");
      return absl::OkStatus();
    };
  }
  std::vector<int64_t> processed() {
    absl::MutexLock lock(&mu_);
    return processed_;
  }

  int64_t hold_step_ = -1;
  int64_t fail_step_ = -1;
  absl::Notification holding_;
  absl::Notification release_;

 private:
  absl::Mutex mu_;
  std::vector<int64_t> started_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> processed_ ABSL_GUARDED_BY(mu_);
};

class LogLines {
 public:
  std::function<void(const std::string&)> Sink() {
    return [this](const std::string& line) {
      absl::MutexLock lock(&mu_);
      lines_.push_back(line);
    };
  }
  std::vector<std::string> lines() {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

PendingCheckpoint Step(int64_t step) {
  return PendingCheckpoint{step, 0.5, "bytes"};
}

TEST(BackgroundUploaderTest, DropsOldestPendingWhenFull) {
  Recorder recorder;
  recorder.hold_step_ = 1;
  LogLines log;
  BackgroundUploader uploader(
      {/*capacity=*/2, log.Sink(), Backpressure::kQueue}, recorder.Processor());
  EXPECT_EQ(uploader.Submit(Step(1)), std::nullopt);
  // Step 1 is now inside the processor, so the queue holds only what follows.
  recorder.holding_.WaitForNotification();
  EXPECT_EQ(uploader.Submit(Step(2)), std::nullopt);
  EXPECT_EQ(uploader.Submit(Step(3)), std::nullopt);
  EXPECT_EQ(uploader.Submit(Step(4)), std::optional<int64_t>(2));
  EXPECT_EQ(uploader.Submit(Step(5)), std::optional<int64_t>(3));
  recorder.release_.Notify();
  uploader.Close();

  EXPECT_THAT(recorder.processed(), ElementsAre(1, 4, 5));
  EXPECT_THAT(uploader.DroppedSteps(), ElementsAre(2, 3));
  BackgroundUploader::Stats stats = uploader.stats();
  EXPECT_EQ(stats.submitted, 5);
  EXPECT_EQ(stats.processed, 3);
  EXPECT_EQ(stats.dropped, 2);
  EXPECT_EQ(stats.failed, 0);
  ASSERT_EQ(log.lines().size(), 2u);
  EXPECT_THAT(log.lines()[0], HasSubstr("dropped checkpoint of step 2"));
  EXPECT_THAT(log.lines()[1], HasSubstr("dropped checkpoint of step 3"));
}

TEST(BackgroundUploaderTest, ProcessesEverythingInOrderWhenNotFull) {
  Recorder recorder;
  BackgroundUploader uploader({/*capacity=*/8, nullptr, Backpressure::kQueue},
                              recorder.Processor());
  for (int64_t step = 10; step <= 50; step += 10) {
    EXPECT_EQ(uploader.Submit(Step(step)), std::nullopt);
  }
  uploader.Close();
  EXPECT_THAT(recorder.processed(), ElementsAre(10, 20, 30, 40, 50));
  EXPECT_EQ(uploader.stats().dropped, 0);
}

TEST(BackgroundUploaderTest, CountsFailuresAndGoesOn) {
  Recorder recorder;
  recorder.fail_step_ = 2;
  LogLines log;
  BackgroundUploader uploader(
      {/*capacity=*/4, log.Sink(), Backpressure::kQueue}, recorder.Processor());
  uploader.Submit(Step(1));
  uploader.Submit(Step(2));
  uploader.Submit(Step(3));
  uploader.Close();
  EXPECT_THAT(recorder.processed(), ElementsAre(1, 2, 3));
  EXPECT_EQ(uploader.stats().failed, 1);
  EXPECT_EQ(uploader.stats().processed, 2);
  ASSERT_EQ(log.lines().size(), 1u);
  EXPECT_THAT(log.lines()[0], HasSubstr("step 2 failed"));
  EXPECT_THAT(log.lines()[0], HasSubstr("server gone"));
}

// The default: while step 1 is processed, each new checkpoint replaces the
// one waiting, silently; the newest is processed next.
TEST(BackgroundUploaderTest, CoalesceKeepsOnlyTheNewestPending) {
  Recorder recorder;
  recorder.hold_step_ = 1;
  LogLines log;
  BackgroundUploader::Options options;
  options.log = log.Sink();
  EXPECT_EQ(options.policy, Backpressure::kCoalesce);
  BackgroundUploader uploader(options, recorder.Processor());
  EXPECT_EQ(uploader.Submit(Step(1)), std::nullopt);
  recorder.holding_.WaitForNotification();
  EXPECT_EQ(uploader.Submit(Step(2)), std::nullopt);
  EXPECT_EQ(uploader.Submit(Step(3)), std::optional<int64_t>(2));
  EXPECT_EQ(uploader.Submit(Step(4)), std::optional<int64_t>(3));
  recorder.release_.Notify();
  uploader.Close();
  EXPECT_THAT(recorder.processed(), ElementsAre(1, 4));
  EXPECT_THAT(uploader.DroppedSteps(), ElementsAre(2, 3));
  EXPECT_EQ(uploader.stats().dropped, 2);
  EXPECT_TRUE(log.lines().empty());
}

// kBlock: with the one place taken, Submit waits inside the uploader until the
// background thread takes the pending checkpoint; nothing is dropped.
TEST(BackgroundUploaderTest, BlockWaitsForRoomAndDropsNothing) {
  Recorder recorder;
  recorder.hold_step_ = 1;
  BackgroundUploader uploader({/*capacity=*/1, nullptr, Backpressure::kBlock},
                              recorder.Processor());
  EXPECT_EQ(uploader.Submit(Step(1)), std::nullopt);
  recorder.holding_.WaitForNotification();
  EXPECT_EQ(uploader.Submit(Step(2)), std::nullopt);  // the one place
  absl::Notification returned;
  std::optional<int64_t> third_dropped;
  std::thread trainer([&] {
    third_dropped = uploader.Submit(Step(3));
    returned.Notify();
  });
  // Submit counts a checkpoint on entry: once it has, the trainer is inside.
  while (uploader.stats().submitted < 3) std::this_thread::yield();
  EXPECT_FALSE(returned.WaitForNotificationWithTimeout(absl::Milliseconds(100)))
      << "Submit returned while the queue was full";
  recorder.release_.Notify();
  returned.WaitForNotification();
  trainer.join();
  uploader.Close();
  EXPECT_EQ(third_dropped, std::nullopt);
  EXPECT_THAT(recorder.processed(), ElementsAre(1, 2, 3));
  EXPECT_EQ(uploader.stats().dropped, 0);
}

TEST(BackgroundUploaderTest, PolicyNames) {
  for (Backpressure policy :
       {Backpressure::kCoalesce, Backpressure::kQueue, Backpressure::kBlock}) {
    absl::StatusOr<Backpressure> parsed =
        ParseBackpressure(BackpressureName(policy));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, policy);
  }
  EXPECT_EQ(BackpressureName(Backpressure::kQueue), "queue");
  absl::StatusOr<Backpressure> bad = ParseBackpressure("drop");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("'drop' is not coalesce, queue or block"));
}

TEST(BackgroundUploaderTest, SubmitAfterCloseIsDropped) {
  Recorder recorder;
  BackgroundUploader uploader({/*capacity=*/2, nullptr}, recorder.Processor());
  uploader.Close();
  EXPECT_EQ(uploader.Submit(Step(7)), std::optional<int64_t>(7));
  uploader.Close();  // idempotent
  EXPECT_TRUE(recorder.processed().empty());
  EXPECT_THAT(uploader.DroppedSteps(), ElementsAre(7));
}

}  // namespace
}  // namespace curvd::client

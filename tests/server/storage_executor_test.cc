#include "server/storage_executor.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace curvd::server {
namespace {

TEST(StorageExecutorTest, RunsOffTheCallingThreadAndDrainsOnStop) {
  StorageExecutor executor(2);
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> off_caller{0};
  absl::Notification release;
  // One task blocks a thread; the others still run on the second.
  executor.Schedule([&] { release.WaitForNotification(); });
  for (int i = 0; i < 10; ++i) {
    executor.Schedule([&] {
      if (std::this_thread::get_id() != caller) ++off_caller;
    });
  }
  release.Notify();
  executor.Stop();  // runs what was scheduled
  EXPECT_EQ(off_caller.load(), 10);
  // After Stop, a task runs on the calling thread.
  bool inline_run = false;
  executor.Schedule([&] { inline_run = std::this_thread::get_id() == caller; });
  EXPECT_TRUE(inline_run);
}

}  // namespace
}  // namespace curvd::server

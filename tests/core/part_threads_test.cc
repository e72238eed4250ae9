#include "core/objective/part_threads.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace curvd::core {
namespace {

TEST(PartThreadsTest, EveryLaneRunsOnItsOwnThreadAtTheSameTime) {
  PartThreads threads(3);
  EXPECT_EQ(threads.count(), 3);
  for (int round = 0; round < 3; ++round) {
    std::vector<std::thread::id> ids(3);
    std::atomic<int> arrived{0};
    threads.Run([&](int lane) {
      ids[lane] = std::this_thread::get_id();
      // Each lane waits for the others: lanes run in turn would never pass.
      ++arrived;
      while (arrived.load() < 3) std::this_thread::yield();
    });
    EXPECT_EQ(ids[0], std::this_thread::get_id());
    EXPECT_EQ(std::set<std::thread::id>(ids.begin(), ids.end()).size(), 3u);
  }
}

TEST(PartThreadsTest, RethrowsTheLowestLanesErrorAfterAllFinished) {
  PartThreads threads(3);
  std::atomic<int> finished{0};
  try {
    threads.Run([&](int lane) {
      if (lane == 0) {
        ++finished;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20 * lane));
      ++finished;
      throw std::runtime_error(lane == 1 ? "lane 1" : "lane 2");
    });
    FAIL() << "no exception";
  } catch (const std::runtime_error& error) {
    EXPECT_STREQ(error.what(), "lane 1");
  }
  EXPECT_EQ(finished.load(), 3);
  // The threads serve the next Run.
  std::atomic<int> ran{0};
  threads.Run([&](int) { ++ran; });
  EXPECT_EQ(ran.load(), 3);
}

TEST(PartThreadsTest, OneLaneRunsOnTheCaller) {
  PartThreads threads(1);
  std::thread::id id;
  threads.Run([&](int lane) {
    EXPECT_EQ(lane, 0);
    id = std::this_thread::get_id();
  });
  EXPECT_EQ(id, std::this_thread::get_id());
}

}  // namespace
}  // namespace curvd::core

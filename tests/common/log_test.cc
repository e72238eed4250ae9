#include "common/log.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::common {
namespace {

using ::testing::MatchesRegex;

TEST(LogTest, WritesOneLineWithSeverityAndTime) {
  testing::internal::CaptureStderr();
  CURVD_LOG(ERROR) << "cannot record the end of "
                   << "runs/r/checkpoints/1"
                   << ": " << 7;
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_THAT(out,
              MatchesRegex("E [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}"
                           ":[0-9]{2}\\.[0-9]{6}Z cannot record the end of "
                           "runs/r/checkpoints/1: 7\n"));
}

TEST(LogTest, LinesFromSeveralThreadsStayWhole) {
  testing::internal::CaptureStderr();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 50; ++i) CURVD_LOG(INFO) << "thread " << t << " line";
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::string out = testing::internal::GetCapturedStderr();
  std::vector<std::string> lines = absl::StrSplit(out, '\n');
  ASSERT_EQ(lines.size(), 201u);  // 200 lines and the empty tail.
  lines.pop_back();
  for (const std::string& line : lines) {
    EXPECT_THAT(line, MatchesRegex("I [0-9T:.Z-]+ thread [0-3] line"));
  }
}

}  // namespace
}  // namespace curvd::common

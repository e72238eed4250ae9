#include "server/recent_loads.h"

#include "gtest/gtest.h"

namespace curvd::server {
namespace {

TEST(RecentLoadsTest, WarmthCountsTheModelTwiceAndTheShardOnce) {
  RecentLoads loads(4);
  loads.Record("m1", "s1");
  EXPECT_EQ(loads.Warmth("m1", "s1"), 3);
  EXPECT_EQ(loads.Warmth("m1", "s2"), 2);
  EXPECT_EQ(loads.Warmth("m2", "s1"), 1);
  EXPECT_EQ(loads.Warmth("m2", "s2"), 0);
}

TEST(RecentLoadsTest, EmptyKeysNeverMatch) {
  RecentLoads loads(4);
  loads.Record("", "");
  EXPECT_EQ(loads.Warmth("", ""), 0);
}

TEST(RecentLoadsTest, ForgetsTheLeastRecentlyRecordedBeyondCapacity) {
  RecentLoads loads(2);
  loads.Record("m1", "s1");
  loads.Record("m2", "s2");
  loads.Record("m1", "s1");  // m1 and s1 are the most recent again
  loads.Record("m3", "s3");  // m2 and s2 go
  EXPECT_EQ(loads.Warmth("m1", "s1"), 3);
  EXPECT_EQ(loads.Warmth("m2", "s2"), 0);
  EXPECT_EQ(loads.Warmth("m3", "s3"), 3);
}

}  // namespace
}  // namespace curvd::server

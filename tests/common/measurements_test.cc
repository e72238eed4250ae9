#include "common/measurements.h"

#include "gtest/gtest.h"

namespace curvd::common {
namespace {

TEST(MeasurementsTest, OnlyTheLastThreeStatesAreTerminal) {
  EXPECT_FALSE(IsTerminal(v1::Measurement::STATE_UNSPECIFIED));
  EXPECT_FALSE(IsTerminal(v1::Measurement::QUEUED));
  EXPECT_FALSE(IsTerminal(v1::Measurement::RUNNING));
  EXPECT_TRUE(IsTerminal(v1::Measurement::SUCCEEDED));
  EXPECT_TRUE(IsTerminal(v1::Measurement::FAILED));
  EXPECT_TRUE(IsTerminal(v1::Measurement::CANCELLED));
}

// Every kind's name: tests/server/spec_conversion_test.cc.
TEST(MeasurementsTest, KindNameIsTheKindFieldsName) {
  v1::MeasurementSpec spec;
  EXPECT_EQ(KindName(spec), "unspecified");
  spec.mutable_plan();
  EXPECT_EQ(KindName(spec), "plan");
}

}  // namespace
}  // namespace curvd::common

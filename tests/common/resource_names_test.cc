#include "common/resource_names.h"

#include "gtest/gtest.h"

namespace curvd::common {
namespace {

TEST(ResourceNamesTest, FormattedNamesParseBack) {
  std::string checkpoint = CheckpointNameOf("run-1", 42);
  EXPECT_EQ(checkpoint, "runs/run-1/checkpoints/42");
  absl::StatusOr<MeasurementName> name =
      ParseMeasurementName(MeasurementNameOf(checkpoint, "m1"));
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(name->run_id, "run-1");
  EXPECT_EQ(name->step, 42);
  EXPECT_EQ(name->measurement_id, "m1");
  EXPECT_FALSE(ParseCheckpointName("runs/run-1/checkpoints/x").ok());
}

TEST(ResourceNamesTest, StepFromNameReadsTheCheckpointSegment) {
  EXPECT_EQ(StepFromName("runs/r/checkpoints/7/measurements/m"), 7);
  EXPECT_EQ(StepFromName("runs/r/checkpoints/7"), 7);
  EXPECT_EQ(StepFromName("runs/r"), -1);
}

}  // namespace
}  // namespace curvd::common

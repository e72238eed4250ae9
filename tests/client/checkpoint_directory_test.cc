#include "client/checkpoint_directory.h"

#include <stdlib.h>

#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

namespace v1 = ::curvd::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

int64_t StepOr(const StepRule& rule, const std::string& name) {
  absl::StatusOr<int64_t> step = rule.StepOf(name);
  return step.ok() ? *step : -1;
}

TEST(StepRuleTest, DefaultTakesTheLastRunOfDigitsBeforeTheExtension) {
  absl::StatusOr<StepRule> rule = StepRule::Create("");
  ASSERT_TRUE(rule.ok());
  EXPECT_EQ(StepOr(*rule, "ckpt_000150.pt"), 150);
  EXPECT_EQ(StepOr(*rule, "run3-step20.safetensors"), 20);
  EXPECT_EQ(StepOr(*rule, "model.42.zip"), 42);
  EXPECT_EQ(StepOr(*rule, "7"), 7);
  EXPECT_EQ(StepOr(*rule, "step_12_final.pt"), 12);
  absl::StatusOr<int64_t> none = rule->StepOf("final.pt");
  EXPECT_TRUE(absl::IsNotFound(none.status())) << none.status();
  EXPECT_THAT(std::string(none.status().message()),
              HasSubstr("final.pt has no digits"));
  absl::StatusOr<int64_t> huge = rule->StepOf("ckpt_99999999999999999999.pt");
  EXPECT_TRUE(absl::IsInvalidArgument(huge.status())) << huge.status();
}

TEST(StepRuleTest, PatternTakesItsCaptureGroup) {
  absl::StatusOr<StepRule> rule = StepRule::Create("step=(\\d+)");
  ASSERT_TRUE(rule.ok()) << rule.status();
  EXPECT_EQ(StepOr(*rule, "run3_step=20_loss=0.5.pt"), 20);
  EXPECT_TRUE(absl::IsNotFound(rule->StepOf("run3_20.pt").status()));
  absl::StatusOr<StepRule> letters = StepRule::Create("_([a-z]+)\\.pt");
  ASSERT_TRUE(letters.ok());
  absl::StatusOr<int64_t> step = letters->StepOf("ckpt_abc.pt");
  EXPECT_TRUE(absl::IsInvalidArgument(step.status())) << step.status();
  EXPECT_THAT(std::string(step.status().message()), HasSubstr("'abc'"));
}

TEST(StepRuleTest, BadPatternsAreInvalidArgument) {
  for (const char* pattern : {"(\\d+", "\\d+", "(\\d+)_(\\d+)"}) {
    absl::StatusOr<StepRule> rule = StepRule::Create(pattern);
    EXPECT_TRUE(absl::IsInvalidArgument(rule.status())) << pattern;
    EXPECT_THAT(std::string(rule.status().message()), HasSubstr(pattern));
  }
}

TEST(CheckpointFormatTest, ByExtension) {
  EXPECT_EQ(CheckpointFormatOf("a.pt"), v1::CHECKPOINT_FORMAT_TORCHSCRIPT);
  EXPECT_EQ(CheckpointFormatOf("a.zip"), v1::CHECKPOINT_FORMAT_TORCHSCRIPT);
  EXPECT_EQ(CheckpointFormatOf("a.safetensors"),
            v1::CHECKPOINT_FORMAT_SAFETENSORS);
  EXPECT_EQ(CheckpointFormatOf("a.pth.tar"), std::nullopt);
  EXPECT_EQ(CheckpointFormatOf("notes.txt"), std::nullopt);
}

class ScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/checkpoints_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void Touch(const std::string& name) {
    std::ofstream(dir_ + "/" + name) << "x";
  }
  std::string dir_;
};

TEST_F(ScanTest, ListsCheckpointsByStepAndSaysWhatItLeavesOut) {
  for (const char* name :
       {"ckpt_200.safetensors", "ckpt_10.pt", "ckpt_0030.zip", "final.pt",
        "dup_50.pt", "dup_50.safetensors", "README.txt"}) {
    Touch(name);
  }
  absl::StatusOr<StepRule> rule = StepRule::Create("");
  ASSERT_TRUE(rule.ok());
  absl::StatusOr<CheckpointDirectory> found =
      ScanCheckpointDirectory(dir_, *rule);
  ASSERT_TRUE(found.ok()) << found.status();
  std::vector<int64_t> steps;
  for (const CheckpointFile& file : found->checkpoints) {
    steps.push_back(file.step);
    EXPECT_EQ(file.path, dir_ + "/" + file.file_name);
  }
  EXPECT_THAT(steps, ElementsAre(10, 30, 200));
  EXPECT_EQ(found->checkpoints[0].format, v1::CHECKPOINT_FORMAT_TORCHSCRIPT);
  EXPECT_EQ(found->checkpoints[2].format, v1::CHECKPOINT_FORMAT_SAFETENSORS);
  ASSERT_EQ(found->skipped_no_step.size(), 1u);
  EXPECT_THAT(found->skipped_no_step[0], HasSubstr("final.pt"));
  ASSERT_EQ(found->duplicate_steps.size(), 1u);
  EXPECT_THAT(found->duplicate_steps[0],
              HasSubstr("step 50 is given by 2 files (dup_50.pt, "
                        "dup_50.safetensors)"));
  EXPECT_EQ(found->other_files, 1);
}

TEST_F(ScanTest, MissingDirectoryIsNotFound) {
  absl::StatusOr<StepRule> rule = StepRule::Create("");
  ASSERT_TRUE(rule.ok());
  EXPECT_TRUE(absl::IsNotFound(
      ScanCheckpointDirectory(dir_ + "/absent", *rule).status()));
}

}  // namespace
}  // namespace curvd::client

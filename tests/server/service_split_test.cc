// The scheduler's splits (v1::DeviceSplit, docs/adr/0028): which
// measurements run on several devices, which devices they get, and what the
// result says, on a core of fake engines on three CUDA devices.
#include <string>
#include <vector>

#include "core_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::server::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

const std::vector<std::string> kDevices = {"cuda:0", "cuda:1", "cuda:2"};

class ServiceSplitTest : public CoreTest {
 protected:
  void SetUp() override {
    CoreTest::SetUp();
    devices_ = kDevices;
    ASSERT_TRUE(StartCore().ok());
    checkpoint_ = CreateCheckpoint("split");
    // Every worker waits in Pop before a test measures.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (core_->queue().Idle("cuda") < 3 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    ASSERT_EQ(core_->queue().Idle("cuda"), 3);
  }

  // Creates a measurement of `spec` (shard set here); its status.
  absl::Status CreateWith(curvd::v1::MeasurementSpec spec,
                          curvd::v1::Measurement* m) {
    curvd::v1::CreateMeasurementRequest request;
    request.set_parent(checkpoint_);
    spec.set_shard_uri(kCoreShard);
    *request.mutable_spec() = spec;
    return CreateMeasurementImpl(*core_, request, m);
  }

  std::string checkpoint_;
};

TEST_F(ServiceSplitTest, AutomaticSplitTakesEveryIdleDeviceOfItsClass) {
  curvd::v1::MeasurementSpec spec;
  spec.mutable_sharpness()->set_top_k(1);
  curvd::v1::Measurement m;
  ASSERT_TRUE(CreateWith(spec, &m).ok());
  m = WaitFor(m.name(), curvd::v1::Measurement::SUCCEEDED);
  std::vector<std::string> used = control_->last_split_helpers();
  used.push_back(m.diagnostics().device());
  EXPECT_THAT(used, UnorderedElementsAreArray(kDevices));
  EXPECT_EQ(control_->last_split_rule(), core::SplitRule::kIfLargeEnough);
  EXPECT_THAT(m.diagnostics().split(), HasSubstr("split: 3 parts: "));
  // Released: all three serve again.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (core_->queue().Idle("cuda") < 3 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(core_->queue().Idle("cuda"), 3);
}

// Work the engine would not split holds no device: the others stay idle for
// other measurements while it runs.
TEST_F(ServiceSplitTest, WorkTooSmallToSplitLeavesTheOtherDevicesFree) {
  control_->SetSmallSplitWork();
  control_->Block();
  curvd::v1::MeasurementSpec spec;
  spec.mutable_sharpness()->set_top_k(1);
  curvd::v1::Measurement m;
  ASSERT_TRUE(CreateWith(spec, &m).ok());
  ASSERT_TRUE(control_->WaitForStarted(1));
  EXPECT_EQ(core_->queue().Idle("cuda"), 2);
  control_->Release();
  m = WaitFor(m.name(), curvd::v1::Measurement::SUCCEEDED);
  EXPECT_EQ(m.diagnostics().split(), "not split: fake small work");
  EXPECT_TRUE(control_->last_split_helpers().empty());
}

TEST_F(ServiceSplitTest, OneDeviceAndPerSampleKindsAreNotSplit) {
  curvd::v1::MeasurementSpec one;
  one.mutable_sharpness()->set_top_k(1);
  one.set_device_split(curvd::v1::DEVICE_SPLIT_ONE_DEVICE);
  curvd::v1::MeasurementSpec gop;
  gop.mutable_gop();
  for (const curvd::v1::MeasurementSpec& spec : {one, gop}) {
    curvd::v1::Measurement m;
    ASSERT_TRUE(CreateWith(spec, &m).ok());
    m = WaitFor(m.name(), curvd::v1::Measurement::SUCCEEDED);
    EXPECT_EQ(m.diagnostics().split(), "");
    EXPECT_FALSE(control_->last_split_rule().has_value());
  }
}

TEST_F(ServiceSplitTest, ForcingASplitOfAPerSampleKindIsInvalid) {
  curvd::v1::MeasurementSpec spec;
  spec.mutable_gop();
  spec.set_device_split(curvd::v1::DEVICE_SPLIT_ALL_IDLE_DEVICES);
  curvd::v1::Measurement m;
  const absl::Status status = CreateWith(spec, &m);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("gop reads per-sample data and is not split"));
}

// The llc kind alone divides its chains (docs/adr/0029): the scheduler
// offers it a split; beside other kinds in a plan it is not split.
TEST_F(ServiceSplitTest, LlcAloneIsOfferedASplitAndInAPlanIsNot) {
  curvd::v1::MeasurementSpec llc;
  llc.mutable_llc();
  llc.set_device_split(curvd::v1::DEVICE_SPLIT_ALL_IDLE_DEVICES);
  curvd::v1::Measurement m;
  ASSERT_TRUE(CreateWith(llc, &m).ok());
  m = WaitFor(m.name(), curvd::v1::Measurement::SUCCEEDED);
  EXPECT_EQ(control_->last_split_rule(), core::SplitRule::kAlways);
  EXPECT_EQ(control_->last_split_helpers().size(), 2u);
  curvd::v1::MeasurementSpec plan;
  plan.mutable_plan()->mutable_llc();
  plan.mutable_plan()->mutable_sharpness();
  plan.set_device_split(curvd::v1::DEVICE_SPLIT_ALL_IDLE_DEVICES);
  const absl::Status status = CreateWith(plan, &m);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("llc reads per-sample data and is not split"));
}

// A device busy with another measurement is not taken, and a forced split
// is forced.
TEST_F(ServiceSplitTest, ASplitNeverTakesABusyDevice) {
  control_->Block();
  curvd::v1::MeasurementSpec busy;
  busy.mutable_sharpness()->set_top_k(1);
  busy.set_device_split(curvd::v1::DEVICE_SPLIT_ONE_DEVICE);
  curvd::v1::Measurement first;
  ASSERT_TRUE(CreateWith(busy, &first).ok());
  ASSERT_TRUE(control_->WaitForStarted(1));
  curvd::v1::MeasurementSpec forced;
  forced.mutable_hessian_trace();
  forced.set_device_split(curvd::v1::DEVICE_SPLIT_ALL_IDLE_DEVICES);
  curvd::v1::Measurement second;
  ASSERT_TRUE(CreateWith(forced, &second).ok());
  ASSERT_TRUE(control_->WaitForStarted(2));
  control_->Release();
  first = WaitFor(first.name(), curvd::v1::Measurement::SUCCEEDED);
  second = WaitFor(second.name(), curvd::v1::Measurement::SUCCEEDED);
  const std::vector<std::string> helpers = control_->last_split_helpers();
  ASSERT_EQ(helpers.size(), 1u);
  EXPECT_NE(helpers[0], first.diagnostics().device());
  EXPECT_NE(helpers[0], second.diagnostics().device());
  EXPECT_EQ(control_->last_split_rule(), core::SplitRule::kAlways);
  EXPECT_THAT(second.diagnostics().split(), HasSubstr("split: 2 parts: "));
}

}  // namespace
}  // namespace curvd::server::testing

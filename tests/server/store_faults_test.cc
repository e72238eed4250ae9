// The paths a store failure takes, driven by a FaultInjectingStore: during
// start-up recovery, in progress writes while a measurement runs, and in the
// write of its result. Each gives a clear status, the service keeps serving,
// and nothing stored before is lost.
#include <string>

#include "core_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/measurement_lifecycle.h"

namespace curvd::server::testing {
namespace {

namespace v1 = ::curvd::v1;
using ::testing::HasSubstr;

class StoreFaultsTest : public CoreTest {
 protected:
  // A measurement that succeeded before any fault, and its checkpoint.
  void MeasureBeforeTheFaults() {
    ASSERT_TRUE(StartCore().ok());
    parent_ = CreateCheckpoint("r");
    ASSERT_TRUE(Create(parent_, &good_).ok());
    good_ = WaitFor(good_.name(), v1::Measurement::SUCCEEDED);
  }

  // The good measurement is still stored as it was, and a new one runs.
  void ExpectStillServingAndStored() {
    v1::GetMeasurementRequest get;
    get.set_name(good_.name());
    v1::Measurement kept;
    ASSERT_TRUE(GetMeasurementImpl(*core_, get, &kept).ok());
    EXPECT_EQ(kept.state(), v1::Measurement::SUCCEEDED);
    EXPECT_EQ(kept.sharpness().sharpness(), good_.sharpness().sharpness());
    v1::Measurement again;
    ASSERT_TRUE(Create(parent_, &again).ok());
    WaitFor(again.name(), v1::Measurement::SUCCEEDED);
  }

  std::string parent_;
  v1::Measurement good_;
};

TEST_F(StoreFaultsTest, FailureDuringRecoveryFailsTheStartAndLosesNothing) {
  MeasureBeforeTheFaults();
  control_->Block();
  v1::Measurement running, queued;
  ASSERT_TRUE(Create(parent_, &running).ok());
  ASSERT_TRUE(control_->WaitForStarted(2));
  ASSERT_TRUE(Create(parent_, &queued).ok());
  core_.reset();  // the running one ends FAILED, the queued one stays QUEUED
  control_->Release();

  faults_->FailAfter(StoreCall::kRecoverInterrupted, 0, 1);
  absl::Status start = StartCore();
  EXPECT_EQ(start.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(start.message(),
              HasSubstr("recovering interrupted measurements: injected store "
                        "failure"));
  EXPECT_EQ(core_, nullptr);

  ASSERT_TRUE(StartCore().ok());  // the fault was one call
  WaitFor(queued.name(), v1::Measurement::SUCCEEDED);
  ExpectStillServingAndStored();
}

TEST_F(StoreFaultsTest, FailedFinalWriteRecordsAnInternalFailure) {
  MeasureBeforeTheFaults();
  // The next measurement's start is stored; its result write fails once.
  faults_->FailAfter(StoreCall::kUpdateMeasurement, 1, 1);
  v1::Measurement m;
  ASSERT_TRUE(Create(parent_, &m).ok());
  const v1::Measurement failed = WaitFor(m.name(), v1::Measurement::FAILED);
  EXPECT_EQ(failed.error_code(), static_cast<int>(absl::StatusCode::kInternal));
  EXPECT_EQ(failed.error_message(),
            "the result could not be stored: injected store failure");
  EXPECT_FALSE(failed.has_sharpness());
  EXPECT_EQ(faults_->failed(StoreCall::kUpdateMeasurement), 1);
  ExpectStillServingAndStored();
}

TEST_F(StoreFaultsTest, FinalWritesThatKeepFailingEndAtTheNextStart) {
  MeasureBeforeTheFaults();
  // Both the result and the failure fall back on fail: the store still says
  // RUNNING, as the worker's log says, until the next start fails it.
  faults_->FailAfter(StoreCall::kUpdateMeasurement, 1, 2);
  v1::Measurement m;
  ASSERT_TRUE(Create(parent_, &m).ok());
  ASSERT_TRUE(control_->WaitForStarted(2));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (faults_->failed(StoreCall::kUpdateMeasurement) < 2 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(faults_->failed(StoreCall::kUpdateMeasurement), 2);
  v1::GetMeasurementRequest get;
  get.set_name(m.name());
  v1::Measurement stuck;
  ASSERT_TRUE(GetMeasurementImpl(*core_, get, &stuck).ok());
  EXPECT_EQ(stuck.state(), v1::Measurement::RUNNING);
  ExpectStillServingAndStored();

  ASSERT_TRUE(StartCore().ok());
  const v1::Measurement ended = WaitFor(m.name(), v1::Measurement::FAILED);
  EXPECT_EQ(ended.error_message(),
            "server restarted while the measurement was running");
  ExpectStillServingAndStored();
}

TEST_F(StoreFaultsTest, FailedInsertRefusesTheMeasurementAndQueuesNothing) {
  MeasureBeforeTheFaults();
  faults_->FailAfter(StoreCall::kInsertMeasurement, 0, 1);
  v1::Measurement m;
  absl::Status created = Create(parent_, &m);
  EXPECT_EQ(created.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(core_->queue().size(), 0u);
  EXPECT_EQ(control_->started(), 1);
  ExpectStillServingAndStored();
}

// Progress writes, stored on every report here, fail for a while: the job
// goes on, watchers still see the progress, the store keeps the last progress
// it took, and the result is stored.
TEST_F(StoreFaultsTest, FailingProgressWritesLeaveTheJobAndItsResult) {
  MeasureBeforeTheFaults();
  core_.reset();
  auto store = FaultInjectingStore::Wrap(SqliteStore::Factory(), faults_)(
      state_dir_);
  ASSERT_TRUE(store.ok()) << store.status();
  JobQueue queue(4);
  MeasurementWatchers watchers;
  Metrics metrics({"cpu"}, "test");
  MeasurementLifecycle lifecycle(store->get(), &queue, &watchers, &metrics,
                                 /*progress_store_interval=*/absl::ZeroDuration());
  v1::Measurement m;
  m.set_name(parent_ + "/measurements/progress");
  m.mutable_spec()->set_shard_uri(kCoreShard);
  m.mutable_spec()->mutable_sharpness()->set_top_k(1);
  m.set_state(v1::Measurement::QUEUED);
  ASSERT_TRUE((*store)->InsertMeasurement(parent_, m, "").ok());
  ASSERT_TRUE(lifecycle.Start(m.name(), "cpu").ok());
  int published = 0;
  auto subscription = watchers.Subscribe(
      m.name(), [&published](const v1::Measurement&) { ++published; });

  faults_->FailAfter(StoreCall::kUpdateMeasurement, 1, 2);
  lifecycle.ReportProgress(m.name(), 0.25, "quarter");  // stored
  lifecycle.ReportProgress(m.name(), 0.5, "half");      // fails
  absl::SleepFor(absl::Milliseconds(120));  // past the publish interval
  lifecycle.ReportProgress(m.name(), 0.75, "three quarters");  // fails
  EXPECT_EQ(faults_->failed(StoreCall::kUpdateMeasurement), 2);
  EXPECT_EQ((*store)->GetMeasurement(m.name())->progress_message(), "quarter");
  EXPECT_EQ(published, 1);

  core::MeasurementResult result;
  core::SharpnessMethod sharpness;
  sharpness.result.top.push_back({3.0, 0.0, true});
  result.methods.push_back(sharpness);
  auto finished = lifecycle.Finish(m.name(), result);
  ASSERT_TRUE(finished.ok()) << finished.status();
  const v1::Measurement stored = (*store)->GetMeasurement(m.name()).value();
  EXPECT_EQ(stored.state(), v1::Measurement::SUCCEEDED);
  EXPECT_EQ(stored.sharpness().sharpness(), 3.0);
  EXPECT_EQ(published, 2);  // and the terminal state
  EXPECT_EQ((*store)->GetMeasurement(good_.name())->state(),
            v1::Measurement::SUCCEEDED);
  subscription.reset();
}

}  // namespace
}  // namespace curvd::server::testing

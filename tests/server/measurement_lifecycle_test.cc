#include "server/measurement_lifecycle.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "google/protobuf/util/time_util.h"
#include "server/sqlite_store.h"
#include "test_dirs.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;
using ::google::protobuf::util::TimeUtil;

constexpr char kCheckpoint[] = "runs/r/checkpoints/1";
constexpr char kName[] = "runs/r/checkpoints/1/measurements/m1";

class MeasurementLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store =
        SqliteStore::Open(testing::MakeTempDir() + "/curvd.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    v1::Run run;
    run.set_name("runs/r");
    run.mutable_model()->mutable_zoo()->add_layer_widths(3);
    *run.mutable_create_time() = TimeUtil::GetCurrentTime();
    ASSERT_TRUE(store_->InsertRun(run).ok());
    v1::Checkpoint checkpoint;
    checkpoint.set_name(kCheckpoint);
    checkpoint.set_step(1);
    checkpoint.set_digest("sha256:00");
    ASSERT_TRUE(store_->InsertCheckpoint("runs/r", checkpoint).ok());
    v1::Measurement m;
    m.set_name(kName);
    m.mutable_spec()->set_shard_uri("builtin://gaussian_regression?n=4&d=2");
    m.mutable_spec()->mutable_sharpness()->set_top_k(1);
    m.set_state(v1::Measurement::QUEUED);
    *m.mutable_create_time() = TimeUtil::GetCurrentTime();
    ASSERT_TRUE(store_->InsertMeasurement(kCheckpoint, m, "").ok());
  }

  std::unique_ptr<SqliteStore> store_;
  JobQueue queue_{16};
  MeasurementWatchers watchers_;
  Metrics metrics_{{"cpu"}, "test"};
};

TEST_F(MeasurementLifecycleTest, StartsRunsAndFinishes) {
  MeasurementLifecycle lifecycle(store_.get(), &queue_, &watchers_, &metrics_);
  auto running = lifecycle.Start(kName, "cpu");
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(lifecycle.running(), 1u);
  core::MeasurementResult result;
  core::SharpnessMethod sharpness;
  sharpness.result.top.push_back({3.0, 0.0, true});
  result.methods.push_back(sharpness);
  auto finished = lifecycle.Finish(kName, result);
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(finished->state(), v1::Measurement::SUCCEEDED);
  EXPECT_EQ(lifecycle.running(), 0u);
}

// A worker can take a job off the queue just before Drain closes it and reach
// Start only after StopAllRunning: that job must not start (nothing would stop
// it, and Drain would wait for all of it), and it stays QUEUED for the next
// start of the server.
TEST_F(MeasurementLifecycleTest, NothingStartsAfterStopAllRunning) {
  MeasurementLifecycle lifecycle(store_.get(), &queue_, &watchers_, &metrics_);
  lifecycle.StopAllRunning();
  auto running = lifecycle.Start(kName, "cpu");
  EXPECT_EQ(running.status().code(), absl::StatusCode::kUnavailable)
      << running.status();
  EXPECT_EQ(lifecycle.running(), 0u);
  auto stored = store_->GetMeasurement(kName);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->state(), v1::Measurement::QUEUED);
}

}  // namespace
}  // namespace curvd::server

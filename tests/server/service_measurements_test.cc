// The lifecycle of measurements over the socket: listing, cancelling, every
// kind's result, the queue's limit, request ids, engine failures, restarts
// and draining.
#include <set>
#include <string>
#include <vector>

#include "server/service_impl.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "service_fixture.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

TEST_F(ServiceTest, ListMeasurementsPaginates) {
  const std::string parent = CreateCheckpoint("r", 1);
  std::set<std::string> created;
  for (int i = 0; i < 5; ++i) {
    v1::Measurement m;
    ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
    created.insert(m.name());
  }
  std::set<std::string> listed;
  std::vector<size_t> page_sizes;
  std::string token;
  do {
    v1::ListMeasurementsRequest request;
    request.set_parent(parent);
    request.set_page_size(2);
    request.set_page_token(token);
    grpc::ClientContext context;
    v1::ListMeasurementsResponse response;
    grpc::Status status = stub_->ListMeasurements(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    page_sizes.push_back(response.measurements_size());
    for (const auto& m : response.measurements()) listed.insert(m.name());
    token = response.next_page_token();
  } while (!token.empty());
  EXPECT_EQ(page_sizes, (std::vector<size_t>{2, 2, 1}));
  EXPECT_EQ(listed, created);

  v1::ListMeasurementsRequest whole_run;
  whole_run.set_parent("runs/r/checkpoints/-");
  grpc::ClientContext context;
  v1::ListMeasurementsResponse response;
  ASSERT_TRUE(stub_->ListMeasurements(&context, whole_run, &response).ok());
  EXPECT_EQ(response.measurements_size(), 5);

  whole_run.set_page_token("not-a-token");
  grpc::ClientContext bad;
  EXPECT_EQ(stub_->ListMeasurements(&bad, whole_run, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}


TEST_F(ServiceTest, CancelQueuedAndRunning) {
  const std::string parent = CreateCheckpoint("r", 1);
  control_->Block();
  v1::Measurement running, queued;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &running).ok());
  ASSERT_TRUE(control_->WaitForStarted(1));
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &queued).ok());

  v1::CancelMeasurementRequest cancel;
  cancel.set_name(queued.name());
  grpc::ClientContext context;
  v1::Measurement result;
  ASSERT_TRUE(stub_->CancelMeasurement(&context, cancel, &result).ok());
  EXPECT_EQ(result.state(), v1::Measurement::CANCELLED);

  cancel.set_name(running.name());
  grpc::ClientContext context2;
  ASSERT_TRUE(stub_->CancelMeasurement(&context2, cancel, &result).ok());
  EXPECT_EQ(result.state(),
            v1::Measurement::RUNNING);  // stops at its next iteration
  WaitForState(running.name(), v1::Measurement::CANCELLED);
  EXPECT_EQ(control_->started(), 1);  // the cancelled queued job never ran

  // Cancelling a terminal measurement returns it unchanged.
  grpc::ClientContext context3;
  ASSERT_TRUE(stub_->CancelMeasurement(&context3, cancel, &result).ok());
  EXPECT_EQ(result.state(), v1::Measurement::CANCELLED);
}


// Each issue-5 kind through the service on the fake engine: its result lands
// in the field named as the kind, a plan's in MeasurementPlanResult.
TEST_F(ServiceTest, EveryNewKindReachesItsResultField) {
  const std::string parent = CreateCheckpoint("r", 1);
  for (const v1::MeasurementSpec& spec : NewKindSpecs()) {
    SCOPED_TRACE(spec.DebugString());
    v1::Measurement m;
    grpc::Status created = CreateMeasurement(parent, spec, &m);
    ASSERT_TRUE(created.ok()) << created.error_message();
    const v1::Measurement done =
        WaitForState(m.name(), v1::Measurement::SUCCEEDED);
    const std::string kind =
        spec.GetReflection()
            ->GetOneofFieldDescriptor(
                spec,
                v1::MeasurementSpec::descriptor()->FindOneofByName("kind"))
            ->name();
    EXPECT_EQ(ResultField(done), kind);
    EXPECT_EQ(ResultField(Get(m.name())), kind);  // as stored
  }
  const v1::ListMeasurementsResponse response = ListAll(parent);
  ASSERT_EQ(response.measurements_size(), 8);
  const v1::Measurement& plan = response.measurements(7);
  EXPECT_TRUE(plan.plan().has_spectral_density());
  EXPECT_EQ(plan.plan().hessian_trace().trace(), 42.0);
  EXPECT_EQ(plan.plan().trace_h3().trace(), 1000.0);
  EXPECT_EQ(plan.plan().exact_hessian().rank(), 2);
  EXPECT_FALSE(plan.plan().has_sharpness());
  EXPECT_EQ(plan.diagnostics().shared_size(), 1);
  // The matrix is full_view_only: Get has it, the (BASIC) list does not.
  EXPECT_EQ(response.measurements(4).exact_hessian().matrix_size(), 0);
  EXPECT_EQ(Get(response.measurements(4).name()).exact_hessian().matrix_size(),
            9);
  EXPECT_EQ(response.measurements(6).loss_slice().t_size(), 5);
}


// Times have microsecond resolution: runs and measurements created within a
// second are ordered by create_time, a measurement's run time is non-zero and
// under a second, and the times Create answers read back the same.
TEST_F(ServiceTest, TimesOrderEventsWithinOneSecond) {
  using ::google::protobuf::util::TimeUtil;
  const v1::Run a = CreateRun("a");
  const v1::Run b = CreateRun("b");
  EXPECT_LT(a.create_time(), b.create_time());
  const std::string parent = CreateCheckpoint("r", 1);
  std::vector<v1::Measurement> created(3);
  for (v1::Measurement& m : created) {
    ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  }
  for (size_t i = 1; i < created.size(); ++i) {
    EXPECT_LT(created[i - 1].create_time(), created[i].create_time()) << i;
  }
  EXPECT_LT(created.back().create_time() - created.front().create_time(),
            TimeUtil::SecondsToDuration(1));
  for (const v1::Measurement& m : created) {
    const v1::Measurement done =
        WaitForState(m.name(), v1::Measurement::SUCCEEDED);
    EXPECT_EQ(done.create_time(), m.create_time());
    EXPECT_GE(done.start_time(), done.create_time());
    EXPECT_GT(done.end_time(), done.start_time());
    EXPECT_LT(done.end_time() - done.start_time(),
              TimeUtil::SecondsToDuration(1));
  }
}

TEST_F(ServiceTest, FullQueueIsResourceExhausted) {
  RestartServer(/*queue_capacity=*/2);
  const std::string parent = CreateCheckpoint("r", 1);
  control_->Block();
  v1::Measurement m;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  ASSERT_TRUE(control_->WaitForStarted(1));  // taken off the queue
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  grpc::Status full = CreateMeasurement(parent, SharpnessSpec(), &m);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  const v1::ListMeasurementsResponse response = ListAll(parent);
  EXPECT_EQ(response.measurements_size(),
            3);  // the refused one left nothing behind
}

TEST_F(ServiceTest, RequestIdMakesCreateIdempotent) {
  const std::string parent = CreateCheckpoint("r", 1);
  v1::Measurement first, second;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &first, "req-7").ok());
  ASSERT_TRUE(
      CreateMeasurement(parent, SharpnessSpec(), &second, "req-7").ok());
  EXPECT_EQ(first.name(), second.name());
  ASSERT_TRUE(
      CreateMeasurement(parent, SharpnessSpec(), &second, "req-8").ok());
  EXPECT_NE(first.name(), second.name());
}

TEST_F(ServiceTest, EngineFailureIsStoredAndTheServerKeepsServing) {
  const std::string parent = CreateCheckpoint("r", 1);
  control_->FailWith(
      absl::InvalidArgumentError("shard inputs do not fit the model"));
  v1::Measurement m;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  v1::Measurement failed = WaitForState(m.name(), v1::Measurement::FAILED);
  EXPECT_EQ(failed.error_code(),
            static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(failed.error_message(), "shard inputs do not fit the model");
  EXPECT_TRUE(failed.has_end_time());

  control_->FailWith(absl::OkStatus());
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  WaitForState(m.name(), v1::Measurement::SUCCEEDED);
}

TEST_F(ServiceTest, RestartKeepsResultsFailsRunningAndRequeuesQueued) {
  const std::string parent = CreateCheckpoint("r", 1);
  v1::Measurement done;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &done).ok());
  WaitForState(done.name(), v1::Measurement::SUCCEEDED);

  // Graceful shutdown with no grace: the running one fails, the queued one
  // stays.
  control_->Block();
  v1::Measurement running, queued;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &running).ok());
  ASSERT_TRUE(control_->WaitForStarted(2));
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &queued).ok());
  server_->Shutdown(absl::ZeroDuration(), absl::Seconds(1));
  server_.reset();

  // Simulate a crash mid-measurement: a row left RUNNING in the store.
  v1::Measurement crashed;
  {
    auto store = SqliteStore::Open(state_dir_ + "/curvd.db");
    ASSERT_TRUE(store.ok()) << store.status();
    crashed = (*store)->GetMeasurement(running.name()).value();
    EXPECT_EQ(crashed.state(), v1::Measurement::FAILED);
    EXPECT_EQ(crashed.error_code(),
              static_cast<int>(grpc::StatusCode::UNAVAILABLE));
    EXPECT_EQ((*store)->GetMeasurement(queued.name())->state(),
              v1::Measurement::QUEUED);
    crashed.set_name(parent + "/measurements/crashed");
    crashed.set_state(v1::Measurement::RUNNING);
    crashed.clear_error_code();
    crashed.clear_error_message();
    ASSERT_TRUE((*store)->InsertMeasurement(parent, crashed, "").ok());
  }

  control_->Release();
  StartServer();
  v1::Measurement kept = Get(done.name());
  EXPECT_EQ(kept.state(), v1::Measurement::SUCCEEDED);
  EXPECT_DOUBLE_EQ(kept.sharpness().sharpness(), 10.0);
  v1::Measurement failed = Get(crashed.name());
  EXPECT_EQ(failed.state(), v1::Measurement::FAILED);
  EXPECT_EQ(failed.error_message(),
            "server restarted while the measurement was running");
  WaitForState(queued.name(), v1::Measurement::SUCCEEDED);
}

TEST_F(ServiceTest, RestartFailsQueuedWorkForADeviceItNoLongerHas) {
  const std::string parent = CreateCheckpoint("r", 1);
  server_->Shutdown(absl::ZeroDuration(), absl::Seconds(1));
  server_.reset();
  // Queued for CUDA by a server that had a GPU; this one has only the CPU.
  v1::Measurement orphan;
  orphan.set_name(parent + "/measurements/orphan");
  *orphan.mutable_spec() = SharpnessSpec();
  orphan.mutable_spec()->set_device("cuda");
  orphan.set_state(v1::Measurement::QUEUED);
  {
    auto store = SqliteStore::Open(state_dir_ + "/curvd.db");
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->InsertMeasurement(parent, orphan, "").ok());
  }
  StartServer();
  v1::Measurement failed = Get(orphan.name());
  EXPECT_EQ(failed.state(), v1::Measurement::FAILED);
  EXPECT_EQ(failed.error_code(),
            static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_THAT(failed.error_message(),
              ::testing::HasSubstr("without a cuda worker"));
  // The server goes on measuring.
  v1::Measurement m;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  WaitForState(m.name(), v1::Measurement::SUCCEEDED);
}

TEST_F(ServiceTest, DrainingRefusesNewMeasurements) {
  const std::string parent = CreateCheckpoint("r", 1);
  server_->core().Drain(absl::ZeroDuration());
  v1::Measurement m;
  grpc::Status status = CreateMeasurement(parent, SharpnessSpec(), &m);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  // Reads still work while draining.
  v1::GetCheckpointRequest get;
  get.set_name(parent);
  v1::Checkpoint checkpoint;
  EXPECT_TRUE(GetCheckpointImpl(server_->core(), get, &checkpoint).ok());
  EXPECT_EQ(checkpoint.step(), 1);
}


}  // namespace
}  // namespace curvd::server

// The service through a real server on a loopback port and a real channel, with
// a fake engine behind it.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "core/engine.h"
#include "core/safetensors.h"
#include "curvd/v1/curvd_service.grpc.pb.h"
#include "fake_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "server/service_impl.h"
#include "server/sqlite_store.h"
#include "test_dirs.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;
using testing::FakeEngine;
using testing::FakeEngineControl;
using ::testing::HasSubstr;

constexpr char kShard[] = "builtin://gaussian_regression?n=8&d=3";
constexpr int64_t kMaxBlobBytes = 4096;

std::string Sha256(const std::string& data) {
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), hash, &size, EVP_sha256(), nullptr);
  return absl::StrCat("sha256:",
                      absl::BytesToHexString(absl::string_view(
                          reinterpret_cast<const char*>(hash), size)));
}

v1::MeasurementSpec SharpnessSpec(int top_k = 3) {
  v1::MeasurementSpec spec;
  spec.set_shard_uri(kShard);
  spec.mutable_sharpness()->set_top_k(top_k);
  return spec;
}

void SetLossExpansion(v1::LossExpansionSpec* e) {
  e->set_rho(0.1);
  e->set_h0(1);
  e->set_ess(8);
  e->set_num_steps(100);
  e->mutable_trace_h3()->set_max_probes(20);
}

// One small MSE spec of each issue-5 kind and a plan of several, each small
// enough for the 3-4-1 MLP on the CPU.
std::vector<v1::MeasurementSpec> NewKindSpecs() {
  v1::MeasurementSpec common;
  common.set_shard_uri(kShard);
  common.set_loss(v1::LOSS_FUNCTION_MSE);
  std::vector<v1::MeasurementSpec> specs(8, common);
  specs[0].mutable_spectral_density()->set_runs(3);
  specs[0].mutable_spectral_density()->set_grid_points(64);
  specs[1].mutable_hutchpp()->set_max_hvps(30);
  specs[2].mutable_trace_h3()->set_max_probes(20);
  SetLossExpansion(specs[3].mutable_loss_expansion());
  specs[4].mutable_exact_hessian()->set_return_matrix(true);
  specs[5].mutable_power_iteration()->set_top_k(2);
  specs[6].mutable_loss_slice()->set_points(5);
  v1::MeasurementPlanSpec* plan = specs[7].mutable_plan();
  plan->mutable_spectral_density()->set_runs(3);
  plan->mutable_hessian_trace()->set_max_probes(20);
  plan->mutable_trace_h3()->set_max_probes(20);
  plan->mutable_exact_hessian();
  return specs;
}

// The name of the result oneof's field that `m` sets, or "".
std::string ResultField(const v1::Measurement& m) {
  const google::protobuf::FieldDescriptor* field =
      m.GetReflection()->GetOneofFieldDescriptor(
          m, v1::Measurement::descriptor()->FindOneofByName("result"));
  return field != nullptr ? field->name() : "";
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_dir_ = testing::MakeTempDir();
    data_root_ = testing::MakeTempDir();
    control_ = std::make_shared<FakeEngineControl>();
    StartServer();
  }

  void TearDown() override {
    control_->Release();
    server_.reset();
  }

  // Only the metrics test serves /metrics: stopping its HTTP server takes
  // seconds.
  void StartServer(size_t queue_capacity = 256, bool serve_metrics = false) {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = serve_metrics ? "127.0.0.1:0" : "";
    options.service.state_dir = state_dir_;
    options.service.data_roots = {data_root_};
    options.service.max_blob_bytes = max_blob_bytes_;
    options.service.queue_capacity = queue_capacity;
    options.service.devices = {"cpu"};
    options.service.version = "test";
    options.service.request_limits = limits_;
    auto control = control_;
    EngineFactory fake = [control](const std::string& device) {
      return absl::StatusOr<std::unique_ptr<core::Engine>>(
          std::make_unique<FakeEngine>(device, control));
    };
    auto server = CurvdServer::Start(
        options, real_engine_ ? EngineFactory(&core::Engine::Create) : fake);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Curvd::NewStub(channel_);
  }

  void RestartServer(size_t queue_capacity = 256, bool serve_metrics = false) {
    server_->Shutdown(absl::ZeroDuration(), absl::ZeroDuration());
    server_.reset();
    StartServer(queue_capacity, serve_metrics);
  }

  // Sends `chunks` as one WriteBlob stream: each is (offset, bytes); the last
  // one carries finish_write if `finish`.
  grpc::Status Write(const std::string& digest, int64_t size,
                     const std::vector<std::pair<int64_t, std::string>>& chunks,
                     bool finish, v1::BlobStatus* response) {
    grpc::ClientContext context;
    auto writer = stub_->WriteBlob(&context, response);
    for (size_t i = 0; i < chunks.size(); ++i) {
      v1::WriteBlobRequest request;
      if (i == 0) {
        request.set_digest(digest);
        request.set_size_bytes(size);
      }
      request.set_write_offset(chunks[i].first);
      request.set_data(chunks[i].second);
      request.set_finish_write(finish && i + 1 == chunks.size());
      if (!writer->Write(request)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // Uploads `data` in 3 chunks; returns its digest.
  std::string Upload(const std::string& data) {
    const std::string digest = Sha256(data);
    const size_t third = data.size() / 3;
    v1::BlobStatus status;
    grpc::Status rpc = Write(digest, data.size(),
                             {{0, data.substr(0, third)},
                              {third, data.substr(third, third)},
                              {2 * third, data.substr(2 * third)}},
                             true, &status);
    EXPECT_TRUE(rpc.ok()) << rpc.error_message();
    EXPECT_TRUE(status.complete());
    return digest;
  }

  // The measurements of `parent` in one page (the server's default size).
  v1::ListMeasurementsResponse ListAll(const std::string& parent) {
    v1::ListMeasurementsRequest request;
    request.set_parent(parent);
    grpc::ClientContext context;
    v1::ListMeasurementsResponse response;
    grpc::Status status = stub_->ListMeasurements(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // A run of the zoo MLP 3-4-1, which kShard fits under MSE.
  v1::Run CreateRun(const std::string& run_id) {
    v1::CreateRunRequest request;
    request.set_run_id(run_id);
    auto* zoo = request.mutable_run()->mutable_model()->mutable_zoo();
    zoo->set_architecture("mlp");
    for (int w : {3, 4, 1}) zoo->add_layer_widths(w);
    grpc::ClientContext context;
    v1::Run run;
    grpc::Status status = stub_->CreateRun(&context, request, &run);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return run;
  }

  // A run with one checkpoint at `step`; returns the checkpoint's name.
  std::string CreateCheckpoint(const std::string& run_id, int64_t step) {
    CreateRun(run_id);
    return AddCheckpoint(run_id, step,
                         "weights of step " + std::to_string(step));
  }

  // Records `bytes` (uploaded) as checkpoint `step` of the existing run
  // `run_id`; returns the checkpoint's name.
  std::string AddCheckpoint(const std::string& run_id, int64_t step,
                            const std::string& bytes) {
    v1::CreateCheckpointRequest request;
    request.set_parent("runs/" + run_id);
    request.mutable_checkpoint()->set_step(step);
    request.mutable_checkpoint()->set_digest(Upload(bytes));
    grpc::ClientContext context;
    v1::Checkpoint checkpoint;
    grpc::Status status =
        stub_->CreateCheckpoint(&context, request, &checkpoint);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return checkpoint.name();
  }

  grpc::Status CreateMeasurement(const std::string& parent,
                                 const v1::MeasurementSpec& spec,
                                 v1::Measurement* m,
                                 const std::string& request_id = "") {
    v1::CreateMeasurementRequest request;
    request.set_parent(parent);
    *request.mutable_spec() = spec;
    request.set_request_id(request_id);
    grpc::ClientContext context;
    return stub_->CreateMeasurement(&context, request, m);
  }

  v1::Measurement Get(const std::string& name) {
    v1::GetMeasurementRequest request;
    request.set_name(name);
    grpc::ClientContext context;
    v1::Measurement m;
    grpc::Status status = stub_->GetMeasurement(&context, request, &m);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return m;
  }

  v1::Measurement WaitForState(const std::string& name,
                               v1::Measurement::State state) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    v1::Measurement m;
    do {
      m = Get(name);
      if (m.state() == state) return m;
      absl::SleepFor(absl::Milliseconds(5));
    } while (absl::Now() < deadline);
    ADD_FAILURE() << name << " stayed "
                  << v1::Measurement::State_Name(m.state()) << ", expected "
                  << v1::Measurement::State_Name(state);
    return m;
  }

  grpc::StatusCode GetCode(const std::string& name) {
    v1::GetMeasurementRequest request;
    request.set_name(name);
    grpc::ClientContext context;
    v1::Measurement m;
    return stub_->GetMeasurement(&context, request, &m).error_code();
  }

  // The CPU engine of core instead of the fake (RealEngineServiceTest).
  bool real_engine_ = false;
  // The exact-Hessian caps and the blob limit of the next StartServer.
  RequestLimits limits_;
  int64_t max_blob_bytes_ = kMaxBlobBytes;
  std::string state_dir_;
  std::string data_root_;
  std::shared_ptr<FakeEngineControl> control_;
  std::unique_ptr<CurvdServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Curvd::Stub> stub_;
};

// The raw grpc.health.v1 HealthCheckResponse bytes for `service` ("" = the
// whole server), or the RPC's status when it fails.
absl::StatusOr<std::string> HealthCheck(std::shared_ptr<grpc::Channel> channel,
                                        const std::string& service) {
  grpc::GenericStub generic(std::move(channel));
  grpc::ClientContext context;
  // HealthCheckRequest{service}: field 1, length-delimited.
  std::string wire;
  if (!service.empty()) {
    wire = std::string("\x0a", 1) + static_cast<char>(service.size()) + service;
  }
  grpc::Slice slice(wire);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  absl::Notification done;
  grpc::Status status;
  generic.UnaryCall(&context, "/grpc.health.v1.Health/Check",
                    grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      status = std::move(s);
                      done.Notify();
                    });
  done.WaitForNotification();
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message());
  }
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::InternalError("dump");
  std::string bytes;
  for (const auto& s : slices) bytes += std::string(s.begin(), s.end());
  return bytes;
}

TEST_F(ServiceTest, HealthReportsServingForTheServerAndTheService) {
  const std::string kServing("\x08\x01", 2);
  auto whole = HealthCheck(channel_, "");
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(*whole, kServing);
  auto service = HealthCheck(channel_, "curvd.v1.Curvd");
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_EQ(*service, kServing);
  EXPECT_EQ(HealthCheck(channel_, "no.such.Service").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ServiceTest, CreateRunIsIdempotentForTheSameModel) {
  v1::Run first = CreateRun("exp-1");
  EXPECT_EQ(first.name(), "runs/exp-1");
  v1::Run again = CreateRun("exp-1");
  EXPECT_EQ(again.name(), first.name());

  v1::CreateRunRequest different;
  different.set_run_id("exp-1");
  auto* zoo = different.mutable_run()->mutable_model()->mutable_zoo();
  for (int w : {3, 8, 1}) zoo->add_layer_widths(w);
  grpc::ClientContext context;
  v1::Run run;
  EXPECT_EQ(stub_->CreateRun(&context, different, &run).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  v1::CreateRunRequest bad_id = different;
  bad_id.set_run_id("Bad/Id");
  grpc::ClientContext context2;
  EXPECT_EQ(stub_->CreateRun(&context2, bad_id, &run).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServiceTest, UploadResumesAfterAPartialStream) {
  const std::string data(3000, 'w');
  const std::string digest = Sha256(data);
  v1::BlobStatus status;
  // The client stops after 1000 bytes without finish_write.
  grpc::Status rpc =
      Write(digest, data.size(), {{0, data.substr(0, 1000)}}, false, &status);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_FALSE(status.complete());
  EXPECT_EQ(status.committed_size_bytes(), 1000);

  v1::GetBlobStatusRequest query;
  query.set_digest(digest);
  grpc::ClientContext context;
  v1::BlobStatus queried;
  ASSERT_TRUE(stub_->GetBlobStatus(&context, query, &queried).ok());
  EXPECT_EQ(queried.committed_size_bytes(), 1000);

  rpc = Write(digest, data.size(),
              {{1000, data.substr(1000, 1000)}, {2000, data.substr(2000)}},
              true, &status);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_TRUE(status.complete());
  EXPECT_EQ(status.committed_size_bytes(), 3000);
  // A stored blob answers at once.
  rpc = Write(digest, data.size(), {{0, ""}}, false, &status);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_TRUE(status.complete());
}

TEST_F(ServiceTest, OffsetMismatchIsFailedPreconditionAndKeepsData) {
  const std::string stored = Upload("an earlier blob that must survive");
  const std::string data(2000, 'x');
  const std::string digest = Sha256(data);
  v1::BlobStatus status;
  ASSERT_TRUE(
      Write(digest, data.size(), {{0, data.substr(0, 500)}}, false, &status)
          .ok());
  grpc::Status rpc = Write(digest, data.size(), {{700, data.substr(700, 100)}},
                           false, &status);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(rpc.error_message(), HasSubstr("committed size 500"));

  v1::GetBlobStatusRequest query;
  query.set_digest(digest);
  grpc::ClientContext context;
  v1::BlobStatus queried;
  ASSERT_TRUE(stub_->GetBlobStatus(&context, query, &queried).ok());
  EXPECT_EQ(queried.committed_size_bytes(), 500);
  query.set_digest(stored);
  grpc::ClientContext context2;
  ASSERT_TRUE(stub_->GetBlobStatus(&context2, query, &queried).ok());
  EXPECT_TRUE(queried.complete());
}

TEST_F(ServiceTest, DigestMismatchDiscardsThePartialUpload) {
  const std::string stored = Upload("an earlier blob that must survive");
  const std::string claimed = Sha256("something else");
  v1::BlobStatus status;
  grpc::Status rpc = Write(claimed, 10, {{0, "0123456789"}}, true, &status);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(rpc.error_message(),
              HasSubstr(absl::StrCat("digest mismatch: expected ", claimed,
                                     ", got ", Sha256("0123456789"))));
  v1::GetBlobStatusRequest query;
  query.set_digest(claimed);
  grpc::ClientContext context;
  v1::BlobStatus queried;
  ASSERT_TRUE(stub_->GetBlobStatus(&context, query, &queried).ok());
  EXPECT_EQ(queried.committed_size_bytes(), 0);
  EXPECT_FALSE(queried.complete());
  query.set_digest(stored);
  grpc::ClientContext context2;
  ASSERT_TRUE(stub_->GetBlobStatus(&context2, query, &queried).ok());
  EXPECT_TRUE(queried.complete());
}

TEST_F(ServiceTest, UploadOverTheLimitIsResourceExhaustedBeforeWriting) {
  const std::string data(kMaxBlobBytes + 1, 'b');
  v1::BlobStatus status;
  grpc::Status rpc = Write(Sha256(data), data.size(),
                           {{0, data.substr(0, 100)}}, false, &status);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(std::filesystem::is_empty(state_dir_ + "/blobs/partial"));
  EXPECT_FALSE(CreateCheckpoint("after-limit", 1).empty());  // still serving
}

TEST_F(ServiceTest, CheckpointNeedsAKnownRunAndAnUploadedBlob) {
  CreateRun("r");
  v1::CreateCheckpointRequest request;
  request.set_parent("runs/r");
  request.mutable_checkpoint()->set_step(1);
  request.mutable_checkpoint()->set_digest(Sha256("never uploaded"));
  grpc::ClientContext context;
  v1::Checkpoint checkpoint;
  EXPECT_EQ(
      stub_->CreateCheckpoint(&context, request, &checkpoint).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);
  request.set_parent("runs/unknown");
  grpc::ClientContext context2;
  EXPECT_EQ(
      stub_->CreateCheckpoint(&context2, request, &checkpoint).error_code(),
      grpc::StatusCode::NOT_FOUND);
  // Idempotent for the same content.
  const std::string name = CreateCheckpoint("r", 2);
  EXPECT_EQ(CreateCheckpoint("r", 2), name);
}

TEST_F(ServiceTest, WatchSeesQueuedRunningSucceeded) {
  const std::string parent = CreateCheckpoint("r", 1);
  control_->Block();
  v1::Measurement created;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(3), &created).ok());
  EXPECT_EQ(created.state(), v1::Measurement::QUEUED);
  EXPECT_THAT(created.name(), ::testing::StartsWith(parent + "/measurements/"));

  grpc::ClientContext context;
  v1::WatchMeasurementRequest request;
  request.set_name(created.name());
  auto reader = stub_->WatchMeasurement(&context, request);
  std::vector<v1::Measurement::State> states;
  v1::Measurement m;
  while (reader->Read(&m)) {
    if (states.empty() || states.back() != m.state())
      states.push_back(m.state());
    if (m.state() == v1::Measurement::RUNNING) control_->Release();
  }
  ASSERT_TRUE(reader->Finish().ok());
  // The first message may already show RUNNING if the worker was quick.
  ASSERT_GE(states.size(), 2u);
  EXPECT_EQ(states.back(), v1::Measurement::SUCCEEDED);
  EXPECT_EQ(states[states.size() - 2], v1::Measurement::RUNNING);
  EXPECT_EQ(m.sharpness().top_size(), 3);
  EXPECT_DOUBLE_EQ(m.sharpness().sharpness(), 10.0);
  EXPECT_EQ(m.diagnostics().device(), "cpu");
  EXPECT_EQ(m.diagnostics().hvps(), 7);

  // Reattaching after the end replays the terminal state and ends.
  grpc::ClientContext again;
  auto replay = stub_->WatchMeasurement(&again, request);
  ASSERT_TRUE(replay->Read(&m));
  EXPECT_EQ(m.state(), v1::Measurement::SUCCEEDED);
  EXPECT_FALSE(replay->Read(&m));
  EXPECT_TRUE(replay->Finish().ok());
}

TEST_F(ServiceTest, WatchStartsWithQueuedWhileTheEngineIsBusy) {
  const std::string parent = CreateCheckpoint("r", 1);
  control_->Block();
  v1::Measurement first, second;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &first).ok());
  ASSERT_TRUE(control_->WaitForStarted(1));
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &second).ok());
  grpc::ClientContext context;
  v1::WatchMeasurementRequest request;
  request.set_name(second.name());
  auto reader = stub_->WatchMeasurement(&context, request);
  v1::Measurement m;
  ASSERT_TRUE(reader->Read(&m));
  EXPECT_EQ(m.state(), v1::Measurement::QUEUED);
  control_->Release();
  std::vector<v1::Measurement::State> later;
  while (reader->Read(&m)) later.push_back(m.state());
  EXPECT_TRUE(reader->Finish().ok());
  ASSERT_FALSE(later.empty());
  EXPECT_EQ(later.front(), v1::Measurement::RUNNING);
  EXPECT_EQ(later.back(), v1::Measurement::SUCCEEDED);
}

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

TEST_F(ServiceTest, ListRunsAndCheckpointsPaginate) {
  for (int i = 0; i < 5; ++i) CreateCheckpoint("r" + std::to_string(i), i);
  for (int i = 1; i < 5; ++i) CreateCheckpoint("r0", 10 + i);
  v1::ListRunsRequest runs_request;
  runs_request.set_page_size(2);
  grpc::ClientContext context;
  v1::ListRunsResponse runs;
  ASSERT_TRUE(stub_->ListRuns(&context, runs_request, &runs).ok());
  EXPECT_EQ(runs.runs_size(), 2);
  EXPECT_EQ(runs.runs(0).name(), "runs/r0");
  EXPECT_EQ(runs.runs(0).checkpoint_count(), 5);
  EXPECT_FALSE(runs.next_page_token().empty());

  v1::ListCheckpointsRequest request;
  request.set_parent("runs/r0");
  request.set_page_size(3);
  grpc::ClientContext context2;
  v1::ListCheckpointsResponse page1;
  ASSERT_TRUE(stub_->ListCheckpoints(&context2, request, &page1).ok());
  ASSERT_EQ(page1.checkpoints_size(), 3);
  EXPECT_EQ(page1.checkpoints(0).step(), 0);
  EXPECT_EQ(page1.checkpoints(2).step(), 12);
  request.set_page_token(page1.next_page_token());
  grpc::ClientContext context3;
  v1::ListCheckpointsResponse page2;
  ASSERT_TRUE(stub_->ListCheckpoints(&context3, request, &page2).ok());
  ASSERT_EQ(page2.checkpoints_size(), 2);
  EXPECT_EQ(page2.checkpoints(1).step(), 14);
  EXPECT_TRUE(page2.next_page_token().empty());
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

TEST_F(ServiceTest, UnknownNamesAreNotFoundAndMalformedOnesInvalid) {
  const std::string parent = CreateCheckpoint("r", 1);
  EXPECT_EQ(GetCode(parent + "/measurements/ffff"),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetCode("runs/nope/checkpoints/1/measurements/1"),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetCode("measurements/1"), grpc::StatusCode::INVALID_ARGUMENT);
  // One name per checkpoint: "007" is not step 7, and neither is "7 " or "+7".
  for (const char* step : {"01", "007", "7 ", "+7", "-1", "1e3"}) {
    EXPECT_EQ(GetCode(absl::StrCat("runs/r/checkpoints/", step,
                                   "/measurements/1")),
              grpc::StatusCode::INVALID_ARGUMENT)
        << step;
  }

  v1::GetRunRequest run;
  run.set_name("runs/nope");
  grpc::ClientContext c1;
  v1::Run r;
  EXPECT_EQ(stub_->GetRun(&c1, run, &r).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::GetCheckpointRequest checkpoint;
  checkpoint.set_name("runs/r/checkpoints/99");
  grpc::ClientContext c2;
  v1::Checkpoint c;
  EXPECT_EQ(stub_->GetCheckpoint(&c2, checkpoint, &c).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::Measurement m;
  EXPECT_EQ(CreateMeasurement("runs/r/checkpoints/99", SharpnessSpec(), &m)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::CancelMeasurementRequest cancel;
  cancel.set_name(parent + "/measurements/ffff");
  grpc::ClientContext c3;
  EXPECT_EQ(stub_->CancelMeasurement(&c3, cancel, &m).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::WatchMeasurementRequest watch;
  watch.set_name(parent + "/measurements/ffff");
  grpc::ClientContext c4;
  auto reader = stub_->WatchMeasurement(&c4, watch);
  EXPECT_FALSE(reader->Read(&m));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, SpecsOutOfRangeAreInvalidArgumentAndNotStored) {
  const std::string parent = CreateCheckpoint("r", 1);
  v1::Measurement m;
  grpc::Status k0 = CreateMeasurement(parent, SharpnessSpec(0), &m);
  EXPECT_EQ(k0.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(k0.error_message(), HasSubstr("top_k"));
  v1::MeasurementSpec probes0;
  probes0.set_shard_uri(kShard);
  probes0.mutable_hessian_trace()->set_min_probes(0);
  EXPECT_EQ(CreateMeasurement(parent, probes0, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  probes0.mutable_hessian_trace()->clear_min_probes();
  probes0.mutable_hessian_trace()->set_max_probes(0);
  EXPECT_EQ(CreateMeasurement(parent, probes0, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::MeasurementSpec no_kind;
  no_kind.set_shard_uri(kShard);
  EXPECT_EQ(CreateMeasurement(parent, no_kind, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::MeasurementSpec bad_device = SharpnessSpec();
  bad_device.set_device("cuda");
  EXPECT_EQ(CreateMeasurement(parent, bad_device, &m).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  const v1::ListMeasurementsResponse response = ListAll(parent);
  EXPECT_EQ(response.measurements_size(), 0);
  EXPECT_EQ(control_->started(), 0);
}

// The issue-5 kinds' bad specs are refused before anything is stored or run,
// and the server keeps measuring.
TEST_F(ServiceTest, NewKindSpecsOutOfRangeAreInvalidArgumentAndNotStored) {
  limits_.exact_hessian_max_parameters = 20;  // the 3-4-1 MLP has 21
  limits_.exact_hessian_max_matrix_parameters = 4;
  RestartServer();
  const std::string parent = CreateCheckpoint("r", 1);
  v1::Measurement done;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &done).ok());
  WaitForState(done.name(), v1::Measurement::SUCCEEDED);

  v1::MeasurementSpec common;
  common.set_shard_uri(kShard);
  std::vector<std::pair<v1::MeasurementSpec, std::string>> bad;
  v1::MeasurementSpec spec = common;
  spec.mutable_spectral_density()->set_grid_points(0);
  bad.push_back({spec, "spectral_density.grid_points must be in [2, 100000]"});
  spec = common;
  spec.mutable_trace_h3()->set_min_probes(-5);
  bad.push_back({spec, "trace_h3.min_probes"});
  spec = common;
  spec.mutable_hutchpp()->set_min_residual_probes(-1);
  bad.push_back({spec, "hutchpp.min_residual_probes"});
  spec = common;
  spec.mutable_plan();
  bad.push_back({spec, "plan must set at least one measurement"});
  spec = common;
  SetLossExpansion(spec.mutable_loss_expansion());
  spec.mutable_loss_expansion()->set_rho(0);
  bad.push_back({spec, "loss_expansion.rho must be finite and > 0, got 0"});
  spec = common;
  spec.mutable_exact_hessian();
  bad.push_back({spec,
                 "exact Hessian of 21 parameters exceeds the server's "
                 "cap of 20"});
  spec = common;
  spec.mutable_plan()->mutable_exact_hessian();
  spec.mutable_plan()->mutable_hessian_trace();
  bad.push_back({spec, "exact Hessian of 21 parameters"});
  spec = common;
  spec.mutable_exact_hessian()->set_return_matrix(true);
  // fc1.* has 5 parameters: under the cap of 20, over the matrix cap of 4.
  spec.mutable_block()->add_names("fc1.weight");
  spec.mutable_block()->add_names("fc1.bias");
  bad.push_back({spec,
                 "Hessian matrix of 5 parameters exceeds the server's "
                 "cap of 4"});
  for (const auto& [bad_spec, message] : bad) {
    SCOPED_TRACE(message);
    v1::Measurement m;
    grpc::Status status = CreateMeasurement(parent, bad_spec, &m);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(message));
  }

  // Within the caps: a block of fc1.weight has 4 parameters.
  spec = common;
  spec.mutable_exact_hessian()->set_return_matrix(true);
  spec.mutable_block()->add_names("fc1.weight");
  v1::Measurement small;
  ASSERT_TRUE(CreateMeasurement(parent, spec, &small).ok());
  EXPECT_EQ(WaitForState(small.name(), v1::Measurement::SUCCEEDED)
                .diagnostics()
                .block_parameters(0),
            "fc1.weight");

  const v1::ListMeasurementsResponse response = ListAll(parent);
  EXPECT_EQ(response.measurements_size(), 2);  // the good ones only
  EXPECT_EQ(control_->started(), 2);
  EXPECT_EQ(Get(done.name()).sharpness().sharpness(), 10.0);
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
  EXPECT_EQ(response.measurements(4).exact_hessian().matrix_size(), 9);
  EXPECT_EQ(response.measurements(6).loss_slice().t_size(), 5);
}

// Shards outside the data roots are PERMISSION_DENIED; malformed paths (with
// "..", relative, unknown scheme) are INVALID_ARGUMENT.
TEST_F(ServiceTest, ShardsOutsideTheDataRootsAreRefused) {
  const std::string parent = CreateCheckpoint("r", 1);
  const std::string outside_dir = testing::MakeTempDir();
  std::ofstream(outside_dir + "/shard.safetensors") << "x";
  std::ofstream(data_root_ + "/shard.safetensors") << "x";
  v1::Measurement m;
  v1::MeasurementSpec spec = SharpnessSpec();

  spec.set_shard_uri("file://" + outside_dir + "/shard.safetensors");
  EXPECT_EQ(CreateMeasurement(parent, spec, &m).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  spec.set_shard_uri("file://" + data_root_ + "/../" +
                     std::filesystem::path(outside_dir).filename().string() +
                     "/shard.safetensors");
  EXPECT_EQ(CreateMeasurement(parent, spec, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  spec.set_shard_uri("file://relative/shard.safetensors");
  EXPECT_EQ(CreateMeasurement(parent, spec, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  spec.set_shard_uri("http://example.com/shard");
  EXPECT_EQ(CreateMeasurement(parent, spec, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  spec.set_shard_uri("blob://" + Sha256("not uploaded"));
  EXPECT_EQ(CreateMeasurement(parent, spec, &m).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  spec.set_shard_uri("file://" + data_root_ + "/shard.safetensors?limit=4");
  EXPECT_TRUE(CreateMeasurement(parent, spec, &m).ok());
  spec.set_shard_uri("blob://" + Upload("an uploaded shard") + "?limit=4");
  grpc::Status blob = CreateMeasurement(parent, spec, &m);
  EXPECT_TRUE(blob.ok()) << blob.error_message();
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

// The bad inputs of a measurement through the whole server on the real CPU
// engine: each ends as a FAILED measurement whose error says what is wrong,
// results stored before survive, and the server goes on measuring.
class RealEngineServiceTest : public ServiceTest {
 protected:
  void SetUp() override {
    real_engine_ = true;
    ServiceTest::SetUp();
  }

  // A safetensors state dict of the 3-4-1 MLP with every weight `value`, or
  // with `name` replaced by `renamed` / its shape by `reshaped` when given.
  static std::string StateDict(float value, const std::string& renamed = "",
                               const std::vector<int64_t>& reshaped = {}) {
    const std::vector<std::pair<std::string, std::vector<int64_t>>> layout = {
        {"fc0.weight", {4, 3}},
        {"fc0.bias", {4}},
        {"fc1.weight", {1, 4}},
        {"fc1.bias", {1}}};
    std::vector<core::SafetensorsTensor> tensors;
    for (size_t i = 0; i < layout.size(); ++i) {
      core::SafetensorsTensor t;
      t.name = (i == 0 && !renamed.empty()) ? renamed : layout[i].first;
      t.dtype = "F32";
      t.shape = (i == 0 && !reshaped.empty()) ? reshaped : layout[i].second;
      int64_t count = 1;
      for (int64_t d : t.shape) count *= d;
      const std::vector<float> values(count, value);
      t.data.assign(reinterpret_cast<const char*>(values.data()),
                    values.size() * sizeof(float));
      tensors.push_back(std::move(t));
    }
    return core::SerializeSafetensors(tensors).value();
  }

  static v1::MeasurementSpec MseSharpness(const std::string& shard = kShard) {
    v1::MeasurementSpec spec = SharpnessSpec(1);
    spec.set_shard_uri(shard);
    spec.set_loss(v1::LOSS_FUNCTION_MSE);
    return spec;
  }

  // Creates a measurement and waits for it to end.
  v1::Measurement Measure(const std::string& parent,
                          const v1::MeasurementSpec& spec) {
    v1::Measurement m;
    grpc::Status created = CreateMeasurement(parent, spec, &m);
    EXPECT_TRUE(created.ok()) << created.error_message();
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      m = Get(m.name());
      if (m.state() == v1::Measurement::SUCCEEDED ||
          m.state() == v1::Measurement::FAILED ||
          m.state() == v1::Measurement::CANCELLED) {
        return m;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << m.name() << " did not end";
    return m;
  }

  void ExpectFailed(const v1::Measurement& m, const std::string& reason) {
    EXPECT_EQ(m.state(), v1::Measurement::FAILED) << m.DebugString();
    EXPECT_EQ(m.error_code(),
              static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT))
        << m.error_message();
    EXPECT_THAT(m.error_message(), HasSubstr(reason));
  }

  // A measurement that succeeded before the bad inputs, and checks that it is
  // still stored and that the server still measures.
  void MeasureGoodCheckpoint() {
    CreateRun("good");
    good_parent_ = AddCheckpoint("good", 1, StateDict(0.1f));
    good_ = Measure(good_parent_, MseSharpness());
    ASSERT_EQ(good_.state(), v1::Measurement::SUCCEEDED)
        << good_.error_message();
  }
  void ExpectStillServingAndStored() {
    v1::Measurement kept = Get(good_.name());
    EXPECT_EQ(kept.state(), v1::Measurement::SUCCEEDED);
    EXPECT_EQ(kept.sharpness().sharpness(), good_.sharpness().sharpness());
    v1::Measurement again = Measure(good_parent_, MseSharpness());
    EXPECT_EQ(again.state(), v1::Measurement::SUCCEEDED)
        << again.error_message();
    EXPECT_EQ(again.sharpness().sharpness(), good_.sharpness().sharpness());
  }

  std::string good_parent_;
  v1::Measurement good_;
};

TEST_F(RealEngineServiceTest, CorruptAndTruncatedTorchScriptArchivesFail) {
  MeasureGoodCheckpoint();
  // A run registered with an archive that is not one, and one cut short: a
  // zip local-file header and nothing after it.
  const std::pair<std::string, std::string> archives[] = {
      {"corrupt", "this is not a TorchScript archive"},
      {"truncated", std::string("PK\x03\x04\x14\x00\x00\x00", 8)}};
  for (const auto& [run_id, bytes] : archives) {
    v1::CreateRunRequest request;
    request.set_run_id(run_id);
    request.mutable_run()->mutable_model()->set_archive_digest(Upload(bytes));
    grpc::ClientContext context;
    v1::Run run;
    ASSERT_TRUE(stub_->CreateRun(&context, request, &run).ok());
    const std::string parent = AddCheckpoint(run_id, 1, bytes);
    ExpectFailed(Measure(parent, MseSharpness()),
                 "cannot load TorchScript archive");
  }
  ExpectStillServingAndStored();
}

TEST_F(RealEngineServiceTest, SafetensorsHeaderThatLiesFails) {
  MeasureGoodCheckpoint();
  // The header promises 400 bytes of fc0.bias; the file has 4.
  const std::string header =
      R"({"fc0.bias":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}})";
  std::string lying(8, '\0');
  const uint64_t size = header.size();
  std::memcpy(lying.data(), &size, 8);  // little-endian on every target
  lying += header + std::string(4, '\0');
  CreateRun("lying");
  const std::string parent = AddCheckpoint("lying", 1, lying);
  ExpectFailed(Measure(parent, MseSharpness()), "safetensors");
  // The same file as a shard.
  ExpectFailed(Measure(good_parent_,
                       MseSharpness("blob://" + Upload(lying))),
               "safetensors");
  ExpectStillServingAndStored();
}

// An archive's parameter count is known only once the worker loads it: an
// exact Hessian over the cap ends FAILED with INVALID_ARGUMENT, and a block of
// the same archive under the cap runs.
TEST_F(RealEngineServiceTest, ArchiveExactHessianOverTheCapFailsAndABlockRuns) {
  const std::filesystem::path fixtures(CURVD_CORE_FIXTURE_DIR);
  if (!std::filesystem::exists(fixtures / "zoo_mlp.pt")) {
    GTEST_SKIP() << "no TorchScript fixture: CMake found no python3 with torch";
  }
  auto read = [](const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  limits_.exact_hessian_max_parameters = 20;  // zoo_mlp.pt (5-8-3) has 75
  max_blob_bytes_ = 1 << 20;                  // the archive is about 5 KB
  RestartServer();
  MeasureGoodCheckpoint();
  v1::CreateRunRequest request;
  request.set_run_id("archive");
  const std::string archive = read(fixtures / "zoo_mlp.pt");
  request.mutable_run()->mutable_model()->set_archive_digest(Upload(archive));
  grpc::ClientContext context;
  v1::Run run;
  ASSERT_TRUE(stub_->CreateRun(&context, request, &run).ok());
  // A whole archive per step, as torch.jit.save writes during training.
  const std::string parent = AddCheckpoint("archive", 1, archive);

  v1::MeasurementSpec spec;
  spec.set_shard_uri("builtin://gaussian_regression?n=8&d=5&outputs=3");
  spec.set_loss(v1::LOSS_FUNCTION_MSE);
  spec.mutable_exact_hessian();
  ExpectFailed(Measure(parent, spec),
               "exact Hessian of 75 parameters exceeds the cap of 20");

  spec.mutable_block()->add_names("fc1.bias");  // 3 parameters
  const v1::Measurement block = Measure(parent, spec);
  ASSERT_EQ(block.state(), v1::Measurement::SUCCEEDED) << block.error_message();
  EXPECT_EQ(block.exact_hessian().eigenvalues_size(), 3);
  EXPECT_THAT(block.diagnostics().block_parameters(),
              ::testing::ElementsAre("fc1.bias"));
  ExpectStillServingAndStored();
}

TEST_F(RealEngineServiceTest, StateDictNameOrShapeMismatchFails) {
  MeasureGoodCheckpoint();
  CreateRun("mismatch");
  ExpectFailed(Measure(AddCheckpoint("mismatch", 1, StateDict(0.1f, "fc9.weight")),
                       MseSharpness()),
               "fc0.weight");
  ExpectFailed(Measure(AddCheckpoint("mismatch", 2,
                                     StateDict(0.1f, "", {4, 2})),
                       MseSharpness()),
               "shape [4, 2]");
  ExpectStillServingAndStored();
}

TEST_F(RealEngineServiceTest, ShardThatDoesNotFitTheModelFails) {
  MeasureGoodCheckpoint();
  ExpectFailed(
      Measure(good_parent_,
              MseSharpness("builtin://gaussian_regression?n=8&d=5")),
      "do not fit the model");
  ExpectStillServingAndStored();
}

TEST_F(RealEngineServiceTest, NanAndInfWeightsFail) {
  MeasureGoodCheckpoint();
  CreateRun("nonfinite");
  ExpectFailed(
      Measure(AddCheckpoint("nonfinite", 1,
                            StateDict(std::numeric_limits<float>::quiet_NaN())),
              MseSharpness()),
      "NaN or Inf");
  ExpectFailed(
      Measure(AddCheckpoint("nonfinite", 2,
                            StateDict(std::numeric_limits<float>::infinity())),
              MseSharpness()),
      "NaN or Inf");
  ExpectStillServingAndStored();
}

// A zoo model beyond the engine's limits is refused when the run is created,
// not stored to fail every measurement later.
TEST_F(RealEngineServiceTest, ZooModelBeyondTheLimitsIsRefusedAtCreateRun) {
  v1::CreateRunRequest request;
  request.set_run_id("huge");
  auto* zoo = request.mutable_run()->mutable_model()->mutable_zoo();
  for (int64_t w : {int64_t{1} << 21, int64_t{1}}) zoo->add_layer_widths(w);
  grpc::ClientContext context;
  v1::Run run;
  grpc::Status status = stub_->CreateRun(&context, request, &run);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("layer_widths[0]"));
  zoo->clear_layer_widths();  // too many layers, each small
  for (int i = 0; i < 1025; ++i) zoo->add_layer_widths(1);
  grpc::ClientContext deep_context;
  status = stub_->CreateRun(&deep_context, request, &run);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("2 to 1024 layer widths"));
  v1::GetRunRequest get;
  get.set_name("runs/huge");
  grpc::ClientContext context2;
  EXPECT_EQ(stub_->GetRun(&context2, get, &run).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// Each issue-5 kind on the real CPU engine reaches SUCCEEDED with results
// that fit the 3-4-1 MLP (21 parameters).
TEST_F(RealEngineServiceTest, EveryNewKindSucceedsOnTheCpuEngine) {
  MeasureGoodCheckpoint();
  for (const v1::MeasurementSpec& spec : NewKindSpecs()) {
    SCOPED_TRACE(spec.DebugString());
    const v1::Measurement m = Measure(good_parent_, spec);
    ASSERT_EQ(m.state(), v1::Measurement::SUCCEEDED) << m.error_message();
    EXPECT_EQ(m.diagnostics().num_parameters(), 21);
    EXPECT_GT(m.diagnostics().hvps(), 0);
    if (m.has_spectral_density()) {
      EXPECT_EQ(m.spectral_density().runs_size(), 3);
      EXPECT_EQ(m.spectral_density().grid_size(), 64);
    } else if (m.has_hutchpp()) {
      EXPECT_GT(m.hutchpp().sketch_size(), 0);
      EXPECT_GT(m.hutchpp().frobenius_norm_squared(), 0);
      EXPECT_GT(m.hutchpp().sketch_frobenius_fraction(), 0);
      EXPECT_LE(m.hutchpp().sketch_frobenius_fraction(), 1 + 1e-12);
      EXPECT_GT(m.hutchpp().hutchinson_standard_error_same_hvps(), 0);
    } else if (m.has_trace_h3()) {
      EXPECT_GE(m.trace_h3().probes(), 10);
    } else if (m.has_loss_expansion()) {
      EXPECT_DOUBLE_EQ(m.loss_expansion().sigma_squared(), 1.0 / 8);
      EXPECT_LE(m.loss_expansion().first_order_term(), 0);
    } else if (m.has_exact_hessian()) {
      EXPECT_EQ(m.exact_hessian().eigenvalues_size(), 21);
      EXPECT_EQ(m.exact_hessian().matrix_size(), 21 * 21);
      // The exact top eigenvalue is Lanczos's sharpness.
      EXPECT_NEAR(m.exact_hessian().eigenvalues(20),
                  good_.sharpness().sharpness(),
                  1e-3 * std::abs(good_.sharpness().sharpness()));
    } else if (m.has_power_iteration()) {
      EXPECT_EQ(m.power_iteration().pairs_size(), 2);
    } else if (m.has_loss_slice()) {
      EXPECT_EQ(m.loss_slice().loss_size(), 5);
      EXPECT_NEAR(m.loss_slice().loss(2), m.diagnostics().loss(),
                  1e-5 * m.diagnostics().loss());  // t = 0
    } else {
      ASSERT_TRUE(m.has_plan());
      EXPECT_EQ(m.plan().spectral_density().runs_size(), 3);
      EXPECT_GT(m.plan().hessian_trace().probes(), 0);
      EXPECT_GT(m.plan().trace_h3().probes(), 0);
      EXPECT_EQ(m.plan().exact_hessian().eigenvalues_size(), 21);
      EXPECT_FALSE(m.plan().has_sharpness());
    }
  }
  ExpectStillServingAndStored();
}

// A block that names no parameter fails the measurement (not the RPC: the
// names are the model's to judge), listing the model's parameter names.
TEST_F(RealEngineServiceTest, BlockNamingNoParameterFails) {
  MeasureGoodCheckpoint();
  v1::MeasurementSpec spec = MseSharpness();
  spec.mutable_block()->add_names("no.such.weight");
  ExpectFailed(Measure(good_parent_, spec), "fc0.weight");
  v1::MeasurementSpec exact = MseSharpness();
  exact.mutable_exact_hessian();
  exact.mutable_block()->add_prefixes("layers.");
  ExpectFailed(Measure(good_parent_, exact), "fc0.weight");
  // A block of fc1.* has the 5 parameters of the last layer.
  exact.mutable_block()->set_prefixes(0, "fc1.");
  const v1::Measurement block = Measure(good_parent_, exact);
  ASSERT_EQ(block.state(), v1::Measurement::SUCCEEDED) << block.error_message();
  EXPECT_EQ(block.exact_hessian().eigenvalues_size(), 5);
  EXPECT_EQ(block.diagnostics().num_parameters(), 5);
  EXPECT_THAT(block.diagnostics().block_parameters(),
              ::testing::ElementsAre("fc1.weight", "fc1.bias"));
  ExpectStillServingAndStored();
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return "";
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: localhost\r\n\r\n");
  if (write(fd, request.data(), request.size()) < 0) {
    close(fd);
    return "";
  }
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  close(fd);
  return response;
}

TEST_F(ServiceTest, MetricsEndpointServesEveryFamily) {
  RestartServer(256, /*serve_metrics=*/true);
  const std::string parent = CreateCheckpoint("r", 1);
  v1::Measurement m;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  WaitForState(m.name(), v1::Measurement::SUCCEEDED);
  ASSERT_GT(server_->metrics_port(), 0);
  const std::string body = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_THAT(body, HasSubstr("200 OK"));
  for (const char* family :
       {"grpc_server_started_total", "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket", "curvd_queue_depth",
        "curvd_measurements_total", "curvd_measurement_duration_seconds_bucket",
        "curvd_hvps_total", "curvd_blob_bytes_received_total",
        "curvd_build_info", "curvd_workers"}) {
    EXPECT_THAT(body, HasSubstr(family));
  }
  EXPECT_THAT(body, HasSubstr("curvd_build_info{version=\"test\"} 1"));
  EXPECT_THAT(body, HasSubstr("curvd_hvps_total{device=\"cpu\"} 7"));
  EXPECT_THAT(body, HasSubstr("curvd_measurements_total{kind=\"sharpness\","
                              "outcome=\"succeeded\"} 1"));
  EXPECT_THAT(body, HasSubstr("grpc_code=\"OK\",grpc_method=\"CreateRun\""));
}

}  // namespace
}  // namespace curvd::server

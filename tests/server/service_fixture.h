// The fixture of the service tests over a real socket: a server on a loopback
// port and a real channel, with a fake engine behind it (or core's CPU engine),
// and helpers that drive it through the stub.
#ifndef CURVD_TESTS_SERVER_SERVICE_FIXTURE_H_
#define CURVD_TESTS_SERVER_SERVICE_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "checkpoint_bytes.h"
#include "core/api/engine.h"
#include "curvd/v1/curvd_service.grpc.pb.h"
#include "fake_engine.h"
#include "gtest/gtest.h"
#include "server/disk_blob_store.h"
#include "server/server.h"
#include "server/sqlite_store.h"
#include "test_dirs.h"

namespace curvd::server {

namespace v1 = ::curvd::v1;
using testing::FakeEngine;
using testing::FakeEngineControl;

inline constexpr char kShard[] = "builtin://gaussian_regression?n=8&d=3";
inline constexpr int64_t kMaxBlobBytes = 4096;

inline std::string Sha256(const std::string& data) {
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), hash, &size, EVP_sha256(), nullptr);
  return absl::StrCat("sha256:",
                      absl::BytesToHexString(absl::string_view(
                          reinterpret_cast<const char*>(hash), size)));
}

inline v1::MeasurementSpec SharpnessSpec(int top_k = 3) {
  v1::MeasurementSpec spec;
  spec.set_shard_uri(kShard);
  spec.mutable_sharpness()->set_top_k(top_k);
  return spec;
}

inline void SetLossExpansion(v1::LossExpansionSpec* e) {
  e->set_rho(0.1);
  e->set_h0(1);
  e->set_ess(8);
  e->set_num_steps(100);
  e->mutable_trace_h3()->set_max_probes(20);
}

// One small MSE spec of each issue-5 kind and a plan of several, each small
// enough for the 3-4-1 MLP on the CPU.
inline std::vector<v1::MeasurementSpec> NewKindSpecs() {
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
  plan->mutable_adaptive_trace()->set_max_hvps(200);
  return specs;
}

// The name of the result oneof's field that `m` sets, or "".
inline std::string ResultField(const v1::Measurement& m) {
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
    options.service.store_factory = store_factory_;
    options.service.blob_store_factory = DiskBlobStore::Factory();
    options.service.data_roots = {data_root_};
    options.service.archive_checker = archive_checker_;
    options.service.blob_limits.max_blob_bytes = max_blob_bytes_;
    options.service.queue_capacity = queue_capacity;
    options.service.devices = {"cpu"};
    options.service.version = "test";
    options.service.metrics.read_device_memory = [](const std::string&) {
      return absl::StatusOr<core::DeviceMemory>(core::DeviceMemory{5, 9});
    };
    options.service.request_limits = limits_;
    options.security = security_;
    options.health_listen = health_listen_;
    if (real_engine_) {
      options.service.count_parameters = &core::Engine::CountParameters;
    }
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
                                   channel_credentials_);
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

  // Reads blob `digest` from `offset` with ReadBlob into `*data`, counting
  // the messages in `*messages`; returns the stream's status.
  grpc::Status Read(const std::string& digest, int64_t offset,
                    std::string* data, int* messages = nullptr) {
    v1::ReadBlobRequest request;
    request.set_digest(digest);
    request.set_read_offset(offset);
    grpc::ClientContext context;
    auto reader = stub_->ReadBlob(&context, request);
    v1::ReadBlobResponse chunk;
    data->clear();
    int count = 0;
    while (reader->Read(&chunk)) {
      data->append(chunk.data());
      ++count;
    }
    if (messages != nullptr) *messages = count;
    return reader->Finish();
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
    return AddCheckpoint(
        run_id, step,
        testing::SafetensorsNote("weights of step " + std::to_string(step)));
  }

  // Records `bytes` (uploaded) as checkpoint `step` of the existing run
  // `run_id` in `format` (unset: the run's default); returns the checkpoint's
  // name.
  std::string AddCheckpoint(
      const std::string& run_id, int64_t step, const std::string& bytes,
      v1::CheckpointFormat format = v1::CHECKPOINT_FORMAT_UNSPECIFIED) {
    v1::CreateCheckpointRequest request;
    request.set_parent("runs/" + run_id);
    request.mutable_checkpoint()->set_step(step);
    request.mutable_checkpoint()->set_format(format);
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

  // Opens the store of the next StartServer (tests may inject faults).
  StoreFactory store_factory_ = SqliteStore::Factory();
  // How the next StartServer secures its port and how stub_ connects to it
  // (the auth tests set them); plain text by default.
  SecurityOptions security_;
  std::string health_listen_;
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials_ =
      grpc::InsecureChannelCredentials();
  // The CPU engine of core instead of the fake (RealEngineServiceTest).
  bool real_engine_ = false;
  // The exact-Hessian caps and the blob limit of the next StartServer.
  RequestLimits limits_;
  int64_t max_blob_bytes_ = kMaxBlobBytes;
  // ServiceOptions::archive_checker (none: archives load in this process).
  std::string archive_checker_;
  std::string state_dir_;
  std::string data_root_;
  std::shared_ptr<FakeEngineControl> control_;
  std::unique_ptr<CurvdServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Curvd::Stub> stub_;
};

}  // namespace curvd::server

#endif  // CURVD_TESTS_SERVER_SERVICE_FIXTURE_H_

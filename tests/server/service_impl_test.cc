// The service's methods called directly on a ServiceCore, without a socket:
// request validation as tables of (request, code, message), and the
// idempotency of creates.
#include <algorithm>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/thread_priority.h"

namespace curvd::server::testing {
namespace {

namespace v1 = ::curvd::v1;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

struct BadRequest {
  std::string what;
  std::function<absl::Status(ServiceCore&)> call;
  absl::StatusCode code;
  std::string message;  // a part of the status message
};

class ServiceImplTest : public CoreTest {
 protected:
  void SetUp() override {
    CoreTest::SetUp();
    ASSERT_TRUE(StartCore().ok());
    parent_ = CreateCheckpoint("r");
  }

  void ExpectAll(const std::vector<BadRequest>& table) {
    for (const BadRequest& bad : table) {
      SCOPED_TRACE(bad.what);
      absl::Status status = bad.call(*core_);
      EXPECT_EQ(status.code(), bad.code) << status;
      EXPECT_THAT(status.message(), HasSubstr(bad.message));
    }
  }

  std::string parent_;
};

template <typename Request, typename Response>
std::function<absl::Status(ServiceCore&)> Call(
    absl::Status (*impl)(ServiceCore&, const Request&, Response*),
    Request request) {
  return [impl, request](ServiceCore& core) {
    Response response;
    return impl(core, request, &response);
  };
}

// CreateRunImpl with no caller, as a plain-text server calls it.
absl::Status CreateAnonymousRun(ServiceCore& core,
                                const v1::CreateRunRequest& request,
                                v1::Run* response) {
  return CreateRunImpl(core, request, response);
}

v1::CreateRunRequest ZooRun(const std::string& run_id) {
  v1::CreateRunRequest request;
  request.set_run_id(run_id);
  auto* zoo = request.mutable_run()->mutable_model()->mutable_zoo();
  for (int w : {3, 4, 1}) zoo->add_layer_widths(w);
  return request;
}

template <typename Request>
Request Named(const std::string& name) {
  Request request;
  request.set_name(name);
  return request;
}

template <typename Request>
Request Paged(const std::string& parent, int page_size,
              const std::string& token) {
  Request request;
  request.set_parent(parent);
  request.set_page_size(page_size);
  request.set_page_token(token);
  return request;
}

TEST_F(ServiceImplTest, BadRunsAndBlobsAreRefused) {
  v1::CreateRunRequest bad_id = ZooRun("Bad/Id");
  v1::CreateRunRequest no_model = ZooRun("m");
  no_model.mutable_run()->clear_model();
  v1::CreateRunRequest missing_archive = ZooRun("a");
  missing_archive.mutable_run()->mutable_model()->set_archive_digest(
      "sha256:" + std::string(64, 'a'));
  v1::CreateRunRequest bad_digest = ZooRun("d");
  bad_digest.mutable_run()->mutable_model()->set_archive_digest("md5:00");
  v1::CreateRunRequest outside = ZooRun("o");
  outside.mutable_run()->mutable_model()->set_archive_uri(
      "file:///etc/passwd");
  v1::ListRunsRequest negative;
  negative.set_page_size(-1);
  v1::ListRunsRequest bad_token;
  bad_token.set_page_token("not-a-token");
  v1::GetBlobStatusRequest blob;
  blob.set_digest("sha256:ABC");
  ExpectAll({
      {"run id", Call(&CreateAnonymousRun, bad_id),
       absl::StatusCode::kInvalidArgument, "Bad/Id"},
      {"no model", Call(&CreateAnonymousRun, no_model),
       absl::StatusCode::kInvalidArgument,
       "run.model must set archive_digest, archive_uri or zoo"},
      {"archive not uploaded", Call(&CreateAnonymousRun, missing_archive),
       absl::StatusCode::kFailedPrecondition, "is not uploaded"},
      {"malformed digest", Call(&CreateAnonymousRun, bad_digest),
       absl::StatusCode::kInvalidArgument, "must be sha256:<64 lowercase hex>"},
      {"archive outside the roots", Call(&CreateAnonymousRun, outside),
       absl::StatusCode::kPermissionDenied, ""},
      {"empty run name", Call(&GetRunImpl, Named<v1::GetRunRequest>("")),
       absl::StatusCode::kInvalidArgument, ""},
      {"unknown run", Call(&GetRunImpl, Named<v1::GetRunRequest>("runs/nope")),
       absl::StatusCode::kNotFound, "runs/nope"},
      {"negative page size", Call(&ListRunsImpl, negative),
       absl::StatusCode::kInvalidArgument, "page_size must be >= 0, got -1"},
      {"foreign page token", Call(&ListRunsImpl, bad_token),
       absl::StatusCode::kInvalidArgument, ""},
      {"blob digest", Call(&GetBlobStatusImpl, blob),
       absl::StatusCode::kInvalidArgument, "sha256:ABC"},
  });
  v1::ListRunsResponse runs;
  ASSERT_TRUE(ListRunsImpl(*core_, {}, &runs).ok());
  EXPECT_EQ(runs.runs_size(), 1);  // only the fixture's
}

TEST_F(ServiceImplTest, BadCheckpointsAreRefused) {
  auto create = [](const std::string& parent, int64_t step,
                   const std::string& uri) {
    v1::CreateCheckpointRequest request;
    request.set_parent(parent);
    request.mutable_checkpoint()->set_step(step);
    if (!uri.empty()) request.mutable_checkpoint()->set_uri(uri);
    return request;
  };
  const std::string weights = "file://" + data_root_ + "/weights";
  v1::CreateCheckpointRequest torchscript = create("runs/r", 2, weights);
  torchscript.mutable_checkpoint()->set_format(
      v1::CHECKPOINT_FORMAT_TORCHSCRIPT);
  ExpectAll({
      {"parent", Call(&CreateCheckpointImpl, create("r", 2, weights)),
       absl::StatusCode::kInvalidArgument, ""},
      {"unknown run", Call(&CreateCheckpointImpl, create("runs/x", 2, weights)),
       absl::StatusCode::kNotFound, ""},
      {"negative step", Call(&CreateCheckpointImpl, create("runs/r", -1, weights)),
       absl::StatusCode::kInvalidArgument,
       "checkpoint.step must be >= 0, got -1"},
      {"no content", Call(&CreateCheckpointImpl, create("runs/r", 2, "")),
       absl::StatusCode::kInvalidArgument,
       "checkpoint must set a digest or a uri"},
      {"missing file",
       Call(&CreateCheckpointImpl,
            create("runs/r", 2, "file://" + data_root_ + "/none")),
       absl::StatusCode::kNotFound, "none"},
      {"TorchScript for a zoo run", Call(&CreateCheckpointImpl, torchscript),
       absl::StatusCode::kInvalidArgument, "a zoo run takes safetensors"},
      {"non-canonical step",
       Call(&GetCheckpointImpl,
            Named<v1::GetCheckpointRequest>("runs/r/checkpoints/01")),
       absl::StatusCode::kInvalidArgument, ""},
      {"unknown step",
       Call(&GetCheckpointImpl,
            Named<v1::GetCheckpointRequest>("runs/r/checkpoints/9")),
       absl::StatusCode::kNotFound, ""},
      {"list of an unknown run",
       Call(&ListCheckpointsImpl,
            Paged<v1::ListCheckpointsRequest>("runs/x", 0, "")),
       absl::StatusCode::kNotFound, ""},
      {"list with a foreign token",
       Call(&ListCheckpointsImpl,
            Paged<v1::ListCheckpointsRequest>("runs/r", 0, "zzz")),
       absl::StatusCode::kInvalidArgument, ""},
  });
}

TEST_F(ServiceImplTest, BadMeasurementRequestsAreRefusedAndNothingRuns) {
  auto create = [this](const std::string& parent,
                       std::function<void(v1::MeasurementSpec*)> edit) {
    v1::CreateMeasurementRequest request;
    request.set_parent(parent);
    request.mutable_spec()->set_shard_uri(kCoreShard);
    request.mutable_spec()->mutable_sharpness()->set_top_k(1);
    edit(request.mutable_spec());
    return request;
  };
  auto same = [](v1::MeasurementSpec*) {};
  ExpectAll({
      {"parent", Call(&CreateMeasurementImpl, create("runs/r", same)),
       absl::StatusCode::kInvalidArgument, ""},
      {"unknown checkpoint",
       Call(&CreateMeasurementImpl, create("runs/r/checkpoints/9", same)),
       absl::StatusCode::kNotFound, ""},
      {"no kind",
       Call(&CreateMeasurementImpl,
            create(parent_, [](v1::MeasurementSpec* s) { s->clear_kind(); })),
       absl::StatusCode::kInvalidArgument, ""},
      {"top_k 0",
       Call(&CreateMeasurementImpl,
            create(parent_,
                   [](v1::MeasurementSpec* s) {
                     s->mutable_sharpness()->set_top_k(0);
                   })),
       absl::StatusCode::kInvalidArgument, "top_k"},
      {"unknown device",
       Call(&CreateMeasurementImpl,
            create(parent_,
                   [](v1::MeasurementSpec* s) { s->set_device("tpu"); })),
       absl::StatusCode::kInvalidArgument,
       "spec.device \"tpu\" must be \"cpu\", \"cuda\" or empty"},
      {"no worker for the device",
       Call(&CreateMeasurementImpl,
            create(parent_,
                   [](v1::MeasurementSpec* s) { s->set_device("cuda"); })),
       absl::StatusCode::kFailedPrecondition, "this server has no cuda worker"},
      {"shard scheme",
       Call(&CreateMeasurementImpl,
            create(parent_,
                   [](v1::MeasurementSpec* s) {
                     s->set_shard_uri("http://example.com/shard");
                   })),
       absl::StatusCode::kInvalidArgument, ""},
      {"measurement name",
       Call(&GetMeasurementImpl,
            Named<v1::GetMeasurementRequest>("measurements/1")),
       absl::StatusCode::kInvalidArgument, ""},
      {"unknown measurement",
       Call(&GetMeasurementImpl,
            Named<v1::GetMeasurementRequest>(parent_ + "/measurements/ff")),
       absl::StatusCode::kNotFound, ""},
      {"cancel of an unknown measurement",
       Call(&CancelMeasurementImpl,
            Named<v1::CancelMeasurementRequest>(parent_ + "/measurements/ff")),
       absl::StatusCode::kNotFound, ""},
      {"cancel of a malformed name",
       Call(&CancelMeasurementImpl,
            Named<v1::CancelMeasurementRequest>("runs/r/measurements/1")),
       absl::StatusCode::kInvalidArgument, ""},
      {"list of an unknown run",
       Call(&ListMeasurementsImpl,
            Paged<v1::ListMeasurementsRequest>("runs/x/checkpoints/-", 0, "")),
       absl::StatusCode::kNotFound, ""},
      {"list of a malformed parent",
       Call(&ListMeasurementsImpl,
            Paged<v1::ListMeasurementsRequest>("runs/r", 0, "")),
       absl::StatusCode::kInvalidArgument, ""},
      {"list with a foreign token",
       Call(&ListMeasurementsImpl,
            Paged<v1::ListMeasurementsRequest>(parent_, 0, "not-a-token")),
       absl::StatusCode::kInvalidArgument, ""},
      {"list with a negative page size",
       Call(&ListMeasurementsImpl,
            Paged<v1::ListMeasurementsRequest>(parent_, -3, "")),
       absl::StatusCode::kInvalidArgument, "page_size"},
  });
  v1::ListMeasurementsResponse listed;
  ASSERT_TRUE(ListMeasurementsImpl(
                  *core_, Paged<v1::ListMeasurementsRequest>(parent_, 0, ""),
                  &listed)
                  .ok());
  EXPECT_EQ(listed.measurements_size(), 0);
  EXPECT_EQ(control_->started(), 0);
}

TEST_F(ServiceImplTest, BadUploadStreamsAreRefused) {
  // The first message of an upload of 10 bytes, with its first 5; each stream
  // uploads its own blob, so none resumes another.
  auto first = [](char blob) {
    v1::WriteBlobRequest request;
    request.set_digest("sha256:" + std::string(64, blob));
    request.set_size_bytes(10);
    request.set_data("01234");
    return request;
  };
  auto upload = [](std::vector<v1::WriteBlobRequest> messages) {
    return [messages](ServiceCore& core) {
      BlobUpload stream(core, "client");
      v1::BlobStatus response;
      bool done = false;
      for (const v1::WriteBlobRequest& m : messages) {
        absl::Status status = stream.OnMessage(m, &done, &response);
        if (!status.ok() || done) return status;
      }
      return stream.OnClientDone(&response);
    };
  };
  v1::WriteBlobRequest changed = first('c');
  changed.set_write_offset(5);
  v1::WriteBlobRequest gap;
  gap.set_write_offset(7);
  gap.set_data("7");
  v1::WriteBlobRequest too_long;
  too_long.set_write_offset(5);
  too_long.set_data("567890");
  v1::WriteBlobRequest short_finish;
  short_finish.set_write_offset(5);
  short_finish.set_finish_write(true);
  v1::WriteBlobRequest anonymous;
  anonymous.set_data("x");
  v1::WriteBlobRequest huge = first('a');
  huge.set_size_bytes(int64_t{1} << 40);
  ExpectAll({
      {"no message", upload({}), absl::StatusCode::kInvalidArgument,
       "WriteBlob stream ended without a message"},
      {"no digest first", upload({anonymous}),
       absl::StatusCode::kInvalidArgument,
       "the first WriteBlob message must set digest"},
      {"digest changed", upload({first('b'), changed}),
       absl::StatusCode::kInvalidArgument, "digest changed within one stream"},
      {"offset gap", upload({first('d'), gap}), absl::StatusCode::kFailedPrecondition,
       "does not equal the committed size 5"},
      {"past the size", upload({first('e'), too_long}), absl::StatusCode::kInvalidArgument,
       "runs past the declared size_bytes 10"},
      {"finish short", upload({first('f'), short_finish}),
       absl::StatusCode::kInvalidArgument, "finish_write with 5 of 10 bytes"},
      {"over the limit", upload({huge}), absl::StatusCode::kResourceExhausted,
       "exceeds the limit"},
  });
}

// The stored measurement says which values it ran with: its effective spec
// has core's defaults written out, before and after the worker finished it.
TEST_F(ServiceImplTest, AMeasurementStoresItsEffectiveSpec) {
  v1::Measurement created;
  ASSERT_TRUE(Create(parent_, &created).ok());
  EXPECT_EQ(created.spec().sharpness().relative_tolerance(), 0);  // unset
  const v1::Measurement done =
      WaitFor(created.name(), v1::Measurement::SUCCEEDED);
  const v1::MeasurementSpec& effective = done.effective_spec();
  const core::LanczosOptions defaults;
  EXPECT_EQ(effective.sharpness().top_k(), 1);
  EXPECT_EQ(effective.sharpness().max_iterations(), defaults.max_iterations);
  EXPECT_EQ(effective.sharpness().relative_tolerance(),
            defaults.relative_tolerance);
  EXPECT_EQ(effective.loss(), v1::LOSS_FUNCTION_CROSS_ENTROPY);
  EXPECT_EQ(effective.precision(), v1::PRECISION_FLOAT32);
  EXPECT_EQ(effective.shard_uri(), created.spec().shard_uri());
  EXPECT_TRUE(done.has_sharpness());
}

// The worker thread measures at the process's nice value raised by
// worker_nice (capped at 19), while this (serving) thread keeps its own; 0
// leaves the worker as it was.
TEST_F(ServiceImplTest, WorkersMeasureAtTheirLoweredPriority) {
  const int serving_nice = CurrentThreadNice();
  for (int increment : {10, 3, 0}) {
    SCOPED_TRACE(increment);
    worker_nice_ = increment;
    ASSERT_TRUE(StartCore().ok());
    v1::Measurement created;
    ASSERT_TRUE(Create(parent_, &created).ok());
    WaitFor(created.name(), v1::Measurement::SUCCEEDED);
    EXPECT_EQ(control_->last_measure_nice(),
              std::min(19, serving_nice + increment));
    EXPECT_EQ(CurrentThreadNice(), serving_nice);
  }
}

TEST_F(ServiceImplTest, CreatesAreIdempotent) {
  v1::Run run;
  ASSERT_TRUE(CreateRunImpl(*core_, ZooRun("r"), &run).ok());
  EXPECT_EQ(run.name(), "runs/r");
  EXPECT_EQ(run.checkpoint_count(), 1);  // the stored run, not a new one
  v1::CreateRunRequest other = ZooRun("r");
  other.mutable_run()->mutable_model()->mutable_zoo()->set_layer_widths(1, 8);
  EXPECT_EQ(CreateRunImpl(*core_, other, &run).code(),
            absl::StatusCode::kAlreadyExists);
  v1::CreateRunRequest unnamed = ZooRun("");
  ASSERT_TRUE(CreateRunImpl(*core_, unnamed, &run).ok());
  EXPECT_THAT(run.name(), MatchesRegex("runs/run-[0-9a-f]{16}"));

  v1::CreateCheckpointRequest again;
  again.set_parent("runs/r");
  again.mutable_checkpoint()->set_step(1);
  again.mutable_checkpoint()->set_uri("file://" + data_root_ + "/weights");
  v1::Checkpoint checkpoint;
  ASSERT_TRUE(CreateCheckpointImpl(*core_, again, &checkpoint).ok());
  EXPECT_EQ(checkpoint.name(), parent_);
  std::ofstream(data_root_ + "/other") << SafetensorsNote("other weights");
  again.mutable_checkpoint()->set_uri("file://" + data_root_ + "/other");
  EXPECT_EQ(CreateCheckpointImpl(*core_, again, &checkpoint).code(),
            absl::StatusCode::kAlreadyExists);

  control_->Block();
  v1::Measurement first, retry, fresh;
  ASSERT_TRUE(Create(parent_, &first, "req-1").ok());
  ASSERT_TRUE(Create(parent_, &retry, "req-1").ok());
  EXPECT_EQ(retry.name(), first.name());
  ASSERT_TRUE(Create(parent_, &fresh, "req-2").ok());
  EXPECT_NE(fresh.name(), first.name());
  // A request_id is unique per checkpoint, not across them.
  const std::string other_parent = CreateCheckpoint("s");
  v1::Measurement elsewhere;
  ASSERT_TRUE(Create(other_parent, &elsewhere, "req-1").ok());
  EXPECT_NE(elsewhere.name(), first.name());

  // Cancelling twice gives the same cancelled measurement.
  v1::Measurement cancelled, twice;
  ASSERT_TRUE(CancelMeasurementImpl(
                  *core_, Named<v1::CancelMeasurementRequest>(fresh.name()),
                  &cancelled)
                  .ok());
  ASSERT_TRUE(CancelMeasurementImpl(
                  *core_, Named<v1::CancelMeasurementRequest>(fresh.name()),
                  &twice)
                  .ok());
  EXPECT_EQ(cancelled.state(), v1::Measurement::CANCELLED);
  EXPECT_EQ(twice.state(), v1::Measurement::CANCELLED);
  EXPECT_EQ(twice.end_time().seconds(), cancelled.end_time().seconds());
  control_->Release();
  WaitFor(first.name(), v1::Measurement::SUCCEEDED);
  v1::ListMeasurementsResponse listed;
  ASSERT_TRUE(ListMeasurementsImpl(
                  *core_, Paged<v1::ListMeasurementsRequest>(parent_, 0, ""),
                  &listed)
                  .ok());
  EXPECT_EQ(listed.measurements_size(), 2);  // req-1 once, req-2
}

}  // namespace
}  // namespace curvd::server::testing

#include "server/service_impl.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/resource_names.h"
#include "common/status_macros.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/checkpoint_content.h"
#include "server/latest_calibration.h"
#include "server/list_pages.h"
#include "server/spec_conversion.h"
#include "server/timestamps.h"

namespace curvd::server {

using ::curvd::common::CheckpointName;
using ::curvd::common::CheckpointNameOf;
using ::curvd::common::MeasurementNameOf;
using ::curvd::common::ParseCheckpointName;
using ::curvd::common::ParseMeasurementName;
using ::curvd::common::ParseRunName;
using ::curvd::common::RunName;
using ::curvd::common::ValidateRunId;

namespace {

namespace v1 = ::curvd::v1;
using ::google::protobuf::util::MessageDifferencer;

constexpr absl::string_view kAllCheckpoints = "/checkpoints/-";

absl::StatusOr<int> PageSize(int requested) {
  if (requested < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be >= 0, got ", requested));
  }
  if (requested == 0) return kDefaultPageSize;
  return requested > kMaxPageSize ? kMaxPageSize : requested;
}

void ToProto(const BlobState& state, v1::BlobStatus* response) {
  response->set_digest(state.digest);
  response->set_committed_size_bytes(state.committed_size_bytes);
  response->set_complete(state.complete);
}

// An exact Hessian over the server's caps is refused here, before it queues:
// a zoo model's size follows from its widths, an archive's is counted with
// options.count_parameters (one load of the archive). Without a counter an
// archive's is refused by the engine when it runs (the measurement FAILS with
// INVALID_ARGUMENT and the same message).
absl::Status CheckExactHessianSize(const ServiceOptions& options,
                                   const v1::Run& run,
                                   const core::ModelSource& model,
                                   const core::MeasurementRequest& request) {
  const core::ExactHessianMethod* exact =
      request.Find<core::ExactHessianMethod>();
  if (exact == nullptr) return absl::OkStatus();
  if (run.model().has_zoo()) {
    return core::CheckExactHessianSize(
        SourceResolver::ZooBlockSize(run.model().zoo(), request.block),
        exact->options);
  }
  if (!options.count_parameters) return absl::OkStatus();
  CURVD_ASSIGN_OR_RETURN(const int64_t size,
                         options.count_parameters(model, request.block));
  return core::CheckExactHessianSize(size, exact->options);
}

absl::Status ValidateModel(ServiceCore& core, const v1::ModelSpec& model) {
  switch (model.source_case()) {
    case v1::ModelSpec::kArchiveDigest:
      return core.blobs().PathOf(model.archive_digest()).status();
    case v1::ModelSpec::kArchiveUri:
      return core.resolver().ResolveContent("", model.archive_uri()).status();
    case v1::ModelSpec::kZoo:
      return SourceResolver::ValidateZoo(model.zoo());
    case v1::ModelSpec::SOURCE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      "run.model must set archive_digest, archive_uri or zoo");
}

bool SameContent(const v1::Checkpoint& a, const v1::Checkpoint& b) {
  return a.format() == b.format() && a.digest() == b.digest() &&
         a.uri() == b.uri();
}

// A fresh run id that this replica holds: one draw in `replicas` is.
std::string NewLocalRunId(ServiceCore& core) {
  std::string run_id;
  do {
    run_id = absl::StrCat("run-", core.NewId());
  } while (!core.options().placement.Owns(run_id));
  return run_id;
}

}  // namespace

absl::Status CreateRunImpl(ServiceCore& core,
                           const v1::CreateRunRequest& request,
                           v1::Run* response, const std::string& creator) {
  absl::ReaderMutexLock referencing(&core.blob_references());
  CURVD_RETURN_IF_ERROR(core.blobs().CheckSpace(0));
  std::string run_id = request.run_id();
  if (run_id.empty()) run_id = NewLocalRunId(core);
  CURVD_RETURN_IF_ERROR(ValidateRunId(run_id));
  CURVD_RETURN_IF_ERROR(ValidateModel(core, request.run().model()));
  v1::Run run;
  run.set_name(RunName(run_id));
  *run.mutable_model() = request.run().model();
  run.set_display_name(request.run().display_name());
  run.set_creator(creator);
  *run.mutable_create_time() = TimestampNow();
  absl::Status inserted = core.store().InsertRun(run);
  if (absl::IsAlreadyExists(inserted)) {
    CURVD_ASSIGN_OR_RETURN(v1::Run existing, core.store().GetRun(run.name()));
    if (!MessageDifferencer::Equals(existing.model(), run.model())) {
      return absl::AlreadyExistsError(
          absl::StrCat(run.name(), " exists with a different model"));
    }
    *response = std::move(existing);
    return absl::OkStatus();
  }
  CURVD_RETURN_IF_ERROR(inserted);
  *response = std::move(run);
  return absl::OkStatus();
}

absl::Status GetRunImpl(ServiceCore& core, const v1::GetRunRequest& request,
                        v1::Run* response) {
  CURVD_RETURN_IF_ERROR(ParseRunName(request.name()).status());
  CURVD_ASSIGN_OR_RETURN(*response, core.store().GetRun(request.name()));
  return absl::OkStatus();
}

absl::Status ListRunsImpl(ServiceCore& core, const v1::ListRunsRequest& request,
                          v1::ListRunsResponse* response) {
  CURVD_ASSIGN_OR_RETURN(int page_size, PageSize(request.page_size()));
  CURVD_ASSIGN_OR_RETURN(
      Page<v1::Run> page,
      core.store().ListRuns(page_size, request.page_token()));
  return FillPage(std::move(page), request.view(), response->mutable_runs(),
                  response->mutable_next_page_token());
}

absl::Status GetBlobStatusImpl(ServiceCore& core,
                               const v1::GetBlobStatusRequest& request,
                               v1::BlobStatus* response) {
  CURVD_ASSIGN_OR_RETURN(BlobState state,
                         core.blobs().Status(request.digest()));
  ToProto(state, response);
  return absl::OkStatus();
}

absl::Status CreateCheckpointImpl(ServiceCore& core,
                                  const v1::CreateCheckpointRequest& request,
                                  v1::Checkpoint* response) {
  absl::ReaderMutexLock referencing(&core.blob_references());
  CURVD_RETURN_IF_ERROR(core.blobs().CheckSpace(0));
  CURVD_ASSIGN_OR_RETURN(std::string run_id, ParseRunName(request.parent()));
  CURVD_ASSIGN_OR_RETURN(v1::Run run, core.store().GetRun(request.parent()));
  const v1::Checkpoint& in = request.checkpoint();
  if (in.step() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint.step must be >= 0, got ", in.step()));
  }
  if (in.content_case() == v1::Checkpoint::CONTENT_NOT_SET) {
    return absl::InvalidArgumentError("checkpoint must set a digest or a uri");
  }
  v1::Checkpoint checkpoint;
  checkpoint.set_name(CheckpointNameOf(run_id, in.step()));
  checkpoint.set_step(in.step());
  checkpoint.set_format(in.format());
  const bool defaulted = in.format() == v1::CHECKPOINT_FORMAT_UNSPECIFIED;
  if (defaulted) {
    checkpoint.set_format(run.model().has_zoo()
                              ? v1::CHECKPOINT_FORMAT_SAFETENSORS
                              : v1::CHECKPOINT_FORMAT_TORCHSCRIPT);
  }
  if (run.model().has_zoo() &&
      checkpoint.format() == v1::CHECKPOINT_FORMAT_TORCHSCRIPT) {
    return absl::InvalidArgumentError(
        "a zoo run takes safetensors checkpoints, not TorchScript archives");
  }
  if (in.content_case() == v1::Checkpoint::kDigest) {
    checkpoint.set_digest(in.digest());
  } else {
    checkpoint.set_uri(in.uri());
  }
  CURVD_ASSIGN_OR_RETURN(std::string path,
                         core.resolver().ResolveContent(in.digest(), in.uri()));
  std::error_code error;
  checkpoint.set_size_bytes(
      static_cast<int64_t>(std::filesystem::file_size(path, error)));
  if (error) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", path, ": ", error.message()));
  }
  CURVD_RETURN_IF_ERROR(
      CheckCheckpointContent(checkpoint.format(), defaulted, path));
  checkpoint.set_train_loss(in.train_loss());
  *checkpoint.mutable_create_time() = TimestampNow();
  absl::Status inserted =
      core.store().InsertCheckpoint(request.parent(), checkpoint);
  if (absl::IsAlreadyExists(inserted)) {
    CURVD_ASSIGN_OR_RETURN(v1::Checkpoint existing,
                           core.store().GetCheckpoint(checkpoint.name()));
    if (!SameContent(existing, checkpoint)) {
      return absl::AlreadyExistsError(
          absl::StrCat(checkpoint.name(), " exists with different content"));
    }
    *response = std::move(existing);
    return absl::OkStatus();
  }
  CURVD_RETURN_IF_ERROR(inserted);
  *response = std::move(checkpoint);
  return absl::OkStatus();
}

absl::Status GetCheckpointImpl(ServiceCore& core,
                               const v1::GetCheckpointRequest& request,
                               v1::Checkpoint* response) {
  CURVD_RETURN_IF_ERROR(ParseCheckpointName(request.name()).status());
  CURVD_ASSIGN_OR_RETURN(*response, core.store().GetCheckpoint(request.name()));
  return absl::OkStatus();
}

absl::Status ListCheckpointsImpl(ServiceCore& core,
                                 const v1::ListCheckpointsRequest& request,
                                 v1::ListCheckpointsResponse* response) {
  CURVD_RETURN_IF_ERROR(ParseRunName(request.parent()).status());
  CURVD_ASSIGN_OR_RETURN(int page_size, PageSize(request.page_size()));
  CURVD_RETURN_IF_ERROR(core.store().GetRun(request.parent()).status());
  CURVD_ASSIGN_OR_RETURN(
      Page<v1::Checkpoint> page,
      core.store().ListCheckpoints(request.parent(), page_size,
                                   request.page_token()));
  return FillPage(std::move(page), request.view(),
                  response->mutable_checkpoints(),
                  response->mutable_next_page_token());
}

absl::Status CreateMeasurementImpl(ServiceCore& core,
                                   const v1::CreateMeasurementRequest& request,
                                   v1::Measurement* response) {
  if (!core.accepting()) {
    return absl::UnavailableError(
        "the server is shutting down; not taking measurements");
  }
  if (request.request_id().size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id has ", request.request_id().size(),
                     " bytes, more than ", kMaxRequestIdBytes));
  }
  absl::ReaderMutexLock referencing(&core.blob_references());
  CURVD_RETURN_IF_ERROR(core.blobs().CheckSpace(0));
  CURVD_ASSIGN_OR_RETURN(CheckpointName parent,
                         ParseCheckpointName(request.parent()));
  CURVD_ASSIGN_OR_RETURN(v1::Checkpoint checkpoint,
                         core.store().GetCheckpoint(request.parent()));
  if (!request.request_id().empty()) {
    absl::StatusOr<v1::Measurement> first =
        core.store().FindMeasurementByRequestId(request.parent(),
                                                request.request_id());
    if (first.ok()) {
      *response = *std::move(first);
      return absl::OkStatus();
    }
    if (!absl::IsNotFound(first.status())) return first.status();
  }
  const v1::MeasurementSpec& spec = request.spec();
  // The values a calibration gives are fixed now, in the effective spec that
  // the worker runs.
  v1::MeasurementSpec resolved = spec;
  CURVD_RETURN_IF_ERROR(
      ApplyLatestCalibration(core.store(), RunName(parent.run_id), &resolved));
  CURVD_ASSIGN_OR_RETURN(
      core::MeasurementRequest measurement_request,
      ToCoreRequest(resolved, core.options().request_limits));
  if (const core::Method* unsplit =
          core::FirstUnsplitMethod(measurement_request.methods);
      unsplit != nullptr &&
      spec.device_split() == v1::DEVICE_SPLIT_ALL_IDLE_DEVICES) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.device_split DEVICE_SPLIT_ALL_IDLE_DEVICES: ",
                     core::MethodName(*unsplit),
                     " reads per-sample data and is not split across devices"));
  }
  CURVD_ASSIGN_OR_RETURN(core::ShardSpec shard,
                         core.resolver().ResolveShard(spec.shard_uri()));
  CURVD_ASSIGN_OR_RETURN(v1::Run run,
                         core.store().GetRun(RunName(parent.run_id)));
  CURVD_ASSIGN_OR_RETURN(core::ModelSource model,
                         core.resolver().ResolveModel(run, checkpoint));
  // Counting loads the archive, whose errors name its file.
  CURVD_RETURN_IF_ERROR(core.resolver().WithoutBlobPaths(
      CheckExactHessianSize(core.options(), run, model, measurement_request)));
  if (!spec.device().empty() && spec.device() != "cpu" &&
      spec.device() != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.device \"", spec.device(),
                     "\" must be \"cpu\", \"cuda\" or empty"));
  }
  if (!spec.device().empty() && !core.HasWorkerFor(spec.device())) {
    return absl::FailedPreconditionError(
        absl::StrCat("this server has no ", spec.device(), " worker"));
  }

  v1::Measurement m;
  m.set_name(MeasurementNameOf(request.parent(), core.NewId()));
  *m.mutable_spec() = spec;
  *m.mutable_effective_spec() = EffectiveSpec(resolved, measurement_request);
  m.set_state(v1::Measurement::QUEUED);
  *m.mutable_create_time() = TimestampNow();
  absl::Status inserted =
      core.store().InsertMeasurement(request.parent(), m, request.request_id());
  if (absl::IsAlreadyExists(inserted) && !request.request_id().empty()) {
    // A concurrent retry with the same request_id won the insert.
    CURVD_ASSIGN_OR_RETURN(*response,
                           core.store().FindMeasurementByRequestId(
                               request.parent(), request.request_id()));
    return absl::OkStatus();
  }
  CURVD_RETURN_IF_ERROR(inserted);
  absl::Status queued = core.queue().Push(Job{
      m.name(), run.name(), spec.device(), model.cache_key, shard.cache_key});
  if (!queued.ok()) {
    // Never acknowledged, so removing it loses nothing a client saw.
    core.store().DeleteMeasurement(m.name()).IgnoreError();
    return queued;
  }
  *response = std::move(m);
  return absl::OkStatus();
}

absl::Status GetMeasurementImpl(ServiceCore& core,
                                const v1::GetMeasurementRequest& request,
                                v1::Measurement* response) {
  CURVD_RETURN_IF_ERROR(ParseMeasurementName(request.name()).status());
  CURVD_ASSIGN_OR_RETURN(*response,
                         core.store().GetMeasurement(request.name()));
  return absl::OkStatus();
}

absl::Status ListMeasurementsImpl(ServiceCore& core,
                                  const v1::ListMeasurementsRequest& request,
                                  v1::ListMeasurementsResponse* response) {
  CURVD_ASSIGN_OR_RETURN(int page_size, PageSize(request.page_size()));
  const std::string& parent = request.parent();
  std::string run_name;
  std::string checkpoint_name;
  if (absl::EndsWith(parent, kAllCheckpoints)) {
    run_name = parent.substr(0, parent.size() - kAllCheckpoints.size());
    CURVD_RETURN_IF_ERROR(ParseRunName(run_name).status());
    CURVD_RETURN_IF_ERROR(core.store().GetRun(run_name).status());
  } else {
    CURVD_ASSIGN_OR_RETURN(CheckpointName name, ParseCheckpointName(parent));
    CURVD_RETURN_IF_ERROR(core.store().GetCheckpoint(parent).status());
    run_name = RunName(name.run_id);
    checkpoint_name = parent;
  }
  CURVD_ASSIGN_OR_RETURN(
      Page<v1::Measurement> page,
      core.store().ListMeasurements(run_name, checkpoint_name, page_size,
                                    request.page_token()));
  return FillPage(std::move(page), request.view(),
                  response->mutable_measurements(),
                  response->mutable_next_page_token());
}

absl::Status CancelMeasurementImpl(ServiceCore& core,
                                   const v1::CancelMeasurementRequest& request,
                                   v1::Measurement* response) {
  CURVD_RETURN_IF_ERROR(ParseMeasurementName(request.name()).status());
  CURVD_ASSIGN_OR_RETURN(*response, core.lifecycle().Cancel(request.name()));
  return absl::OkStatus();
}

absl::Status DeleteRunImpl(ServiceCore& core,
                           const v1::DeleteRunRequest& request,
                           v1::DeleteRunResponse* response) {
  CURVD_RETURN_IF_ERROR(ParseRunName(request.name()).status());
  absl::MutexLock removing(&core.blob_references());
  CURVD_ASSIGN_OR_RETURN(DeletedRun deleted,
                         core.store().DeleteRun(request.name()));
  response->set_checkpoint_count(deleted.checkpoints);
  response->set_measurement_count(deleted.measurements);
  CURVD_ASSIGN_OR_RETURN(const absl::flat_hash_set<std::string> referenced,
                         core.store().ReferencedBlobs());
  for (const std::string& digest : deleted.blob_digests) {
    if (referenced.contains(digest)) continue;
    CURVD_ASSIGN_OR_RETURN(const int64_t bytes, core.blobs().Remove(digest));
    if (bytes == 0) continue;  // not stored (or empty)
    response->set_blob_count(response->blob_count() + 1);
    response->set_blob_bytes(response->blob_bytes() + bytes);
  }
  return absl::OkStatus();
}

absl::Status BlobUpload::OnMessage(const v1::WriteBlobRequest& request,
                                   bool* done, v1::BlobStatus* response) {
  *done = false;
  if (digest_.empty()) {
    if (request.digest().empty()) {
      return absl::InvalidArgumentError(
          "the first WriteBlob message must set digest");
    }
    CURVD_ASSIGN_OR_RETURN(
        writer_, core_.blobs().OpenWriter(request.digest(),
                                          request.size_bytes(), client_));
    digest_ = request.digest();
    if (writer_ == nullptr) {  // already stored: answer at once
      CURVD_ASSIGN_OR_RETURN(BlobState state, core_.blobs().Status(digest_));
      ToProto(state, response);
      *done = true;
      return absl::OkStatus();
    }
  } else if (!request.digest().empty() && request.digest() != digest_) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest changed within one stream: ", digest_, " then ",
                     request.digest()));
  }
  CURVD_RETURN_IF_ERROR(
      writer_->Append(request.write_offset(), request.data()));
  core_.metrics().BlobBytesReceived(
      static_cast<int64_t>(request.data().size()));
  if (!request.finish_write()) return absl::OkStatus();
  CURVD_ASSIGN_OR_RETURN(BlobState state, writer_->Finish());
  ToProto(state, response);
  *done = true;
  return absl::OkStatus();
}

absl::Status BlobUpload::OnClientDone(v1::BlobStatus* response) {
  if (digest_.empty()) {
    return absl::InvalidArgumentError(
        "WriteBlob stream ended without a message");
  }
  response->set_digest(digest_);
  response->set_committed_size_bytes(writer_ ? writer_->committed_size() : 0);
  response->set_complete(false);
  return absl::OkStatus();
}

}  // namespace curvd::server

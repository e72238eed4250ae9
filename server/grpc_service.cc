#include "server/grpc_service.h"

#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/measurements.h"
#include "common/resource_names.h"
#include "common/status_macros.h"
#include "server/blob_download.h"
#include "server/grpc_status.h"
#include "server/metrics.h"
#include "server/replica_placement.h"
#include "server/request_bytes.h"
#include "server/service_impl.h"
#include "server/token_auth_processor.h"

namespace curvd::server {

using ::curvd::common::ParseMeasurementName;

namespace {

namespace v1 = ::curvd::v1;

// Counts an RPC as started on construction and as handled in Finish.
class RpcRecord {
 public:
  RpcRecord(Metrics& metrics, RpcMethod method)
      : metrics_(metrics), method_(method), start_(absl::Now()) {
    metrics_.RpcStarted(method_);
  }
  void Finish(const grpc::Status& status) {
    metrics_.RpcHandled(method_, status.error_code(), absl::Now() - start_);
  }

 private:
  Metrics& metrics_;
  const RpcMethod method_;
  const absl::Time start_;
};

// `bytes` parsed into `request` (ParseRequest), and refused when it is about
// a run that another replica holds, naming the owner (deciding costs one hash).
absl::Status Accept(ServiceCore& core, const grpc::ByteBuffer& bytes,
                    google::protobuf::Message* request) {
  CURVD_RETURN_IF_ERROR(ParseRequest(bytes, request));
  return core.options().placement.Check(*request);
}

// Accepts the request on the gRPC thread, then runs `impl` on the storage
// executor, which finishes the call: the gRPC thread returns the reactor at
// once. `impl` is called as impl(core, request, &response) -> absl::Status.
template <typename Request, typename Response, typename Impl>
grpc::ServerUnaryReactor* Unary(ServiceCore& core, RpcMethod method, Impl impl,
                                grpc::CallbackServerContext* context,
                                const grpc::ByteBuffer* request_bytes,
                                grpc::ByteBuffer* response_bytes) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RpcRecord record(core.metrics(), method);
  Request request;
  if (absl::Status accepted = Accept(core, *request_bytes, &request);
      !accepted.ok()) {
    grpc::Status status = ToGrpcStatus(accepted, context);
    record.Finish(status);
    reactor->Finish(status);
    return reactor;
  }
  core.storage().Schedule([&core, impl, request = std::move(request),
                           response_bytes, reactor, record]() mutable {
    Response response;
    absl::Status done = impl(core, request, &response);
    if (done.ok()) done = SerializeResponse(response, response_bytes);
    grpc::Status status = ToGrpcStatus(done);
    record.Finish(status);
    reactor->Finish(status);
  });
  return reactor;
}

// The client an upload is charged to: the peer's address without the port,
// which changes with every connection ("ipv4:10.0.0.7:41234" ->
// "ipv4:10.0.0.7").
std::string ClientOf(const std::string& peer) {
  const bool ip = absl::StartsWith(peer, "ipv4:") || absl::StartsWith(peer, "ipv6:");
  const size_t port = peer.rfind(':');
  return ip && port > 5 ? peer.substr(0, port) : peer;
}

// Each message is consumed on the storage executor, which then asks for the
// next one or finishes the stream; only one read or task is outstanding at a
// time, so the messages of a stream are handled in order.
class WriteBlobReactor final
    : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  WriteBlobReactor(ServiceCore& core, grpc::CallbackServerContext* context,
                   grpc::ByteBuffer* response_bytes)
      : core_(core),
        context_(context),
        record_(core.metrics(), RpcMethod::kWriteBlob),
        upload_(core, ClientOf(context->peer())),
        response_bytes_(response_bytes) {
    StartRead(&request_bytes_);
  }

  void OnReadDone(bool ok) override {
    core_.storage().Schedule([this, ok] { Consume(ok); });
  }

  void OnDone() override { delete this; }

 private:
  // Nothing touches `this` after StartRead or Finish: the next reaction may
  // already run (and OnDone delete it) on another thread.
  void Consume(bool ok) {
    if (!ok) {  // the client half-closed (or went away) without finish_write
      End(upload_.OnClientDone(&response_));
      return;
    }
    // The first message names the blob, and the run it is for, if any.
    absl::Status accepted = first_ ? Accept(core_, request_bytes_, &request_)
                                   : ParseRequest(request_bytes_, &request_);
    first_ = false;
    if (!accepted.ok()) {
      End(accepted);
      return;
    }
    bool done = false;
    absl::Status status = upload_.OnMessage(request_, &done, &response_);
    if (!status.ok() || done) {
      End(status);
      return;
    }
    StartRead(&request_bytes_);
  }

  void End(absl::Status status) {
    upload_.Release();
    if (status.ok()) status = SerializeResponse(response_, response_bytes_);
    grpc::Status grpc_status = ToGrpcStatus(status, context_);
    record_.Finish(grpc_status);
    Finish(grpc_status);
  }

  ServiceCore& core_;
  grpc::CallbackServerContext* const context_;
  RpcRecord record_;
  BlobUpload upload_;
  grpc::ByteBuffer* const response_bytes_;
  v1::BlobStatus response_;
  grpc::ByteBuffer request_bytes_;
  v1::WriteBlobRequest request_;
  bool first_ = true;
};

// Each chunk is read on the storage executor, and the next one only once
// its write is done: one task or write outstanding at a time.
class ReadBlobReactor final
    : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  ReadBlobReactor(ServiceCore& core, grpc::CallbackServerContext* context,
                  const grpc::ByteBuffer& request_bytes)
      : core_(core), record_(core.metrics(), RpcMethod::kReadBlob) {
    v1::ReadBlobRequest request;
    if (absl::Status accepted = Accept(core, request_bytes, &request);
        !accepted.ok()) {
      End(ToGrpcStatus(accepted, context));
      return;
    }
    core_.storage().Schedule([this, request] {
      const absl::Status opened = download_.Open(core_.blobs(), request);
      if (!opened.ok()) {
        End(ToGrpcStatus(opened));
        return;
      }
      Next();
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      End(grpc::Status(grpc::StatusCode::CANCELLED, "read cancelled"));
      return;
    }
    core_.storage().Schedule([this] { Next(); });
  }

  void OnDone() override { delete this; }

 private:
  // Nothing touches `this` after StartWrite or Finish.
  void Next() {
    bool done = false;
    absl::Status read = download_.Next(&response_, &done);
    if (read.ok() && !done)
      read = SerializeResponse(response_, &response_bytes_);
    if (!read.ok() || done) {
      End(ToGrpcStatus(read));
      return;
    }
    StartWrite(&response_bytes_);
  }

  void End(const grpc::Status& status) {
    record_.Finish(status);
    Finish(status);
  }

  ServiceCore& core_;
  RpcRecord record_;
  BlobDownload download_;
  v1::ReadBlobResponse response_;
  grpc::ByteBuffer response_bytes_;
};

using ::curvd::common::IsTerminal;

// Streams one measurement: its stored state first, then every published change,
// ending after a terminal state. At most one write is outstanding; changes that
// arrive meanwhile queue up, and progress updates within one state collapse to
// the newest, so a slow reader never holds more than one entry per state.
// Decisions are made under mu_ and StartWrite/Finish are called after releasing
// it, because gRPC may run a reaction inline on the calling thread.
class WatchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  WatchReactor(ServiceCore& core, grpc::CallbackServerContext* context,
               const grpc::ByteBuffer& request_bytes)
      : record_(core.metrics(), RpcMethod::kWatchMeasurement),
        inbox_(std::make_shared<Inbox>()) {
    v1::WatchMeasurementRequest request;
    absl::Status valid = ParseRequest(request_bytes, &request);
    if (valid.ok()) valid = ParseMeasurementName(request.name()).status();
    if (valid.ok()) valid = core.options().placement.Check(request);
    if (!valid.ok()) {
      Act(FinishAction(ToGrpcStatus(valid, context)));
      return;
    }
    {
      absl::MutexLock lock(&inbox_->mu);
      inbox_->reactor = this;
    }
    core.storage().Schedule(
        [this, &core, name = request.name()] { Load(core, name); });
  }

  void OnWriteDone(bool ok) override {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok || cancelled_) {
        action = FinishLocked(
            grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      } else if (IsTerminal(in_flight_.state())) {
        action = FinishLocked(grpc::Status::OK);
      } else {
        action = WriteNextLocked();
      }
    }
    Act(action);
  }

  void OnCancel() override {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      if (loaded_ && !writing_) {
        action = FinishLocked(
            grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      }
    }
    Act(action);
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&inbox_->mu);
      inbox_->reactor = nullptr;
    }
    subscription_.reset();
    delete this;
  }

 private:
  // The stored state, read on the storage executor. Subscribing before reading
  // the store, under mu_, means no change is missed and none is delivered ahead
  // of the stored state. Until this ran, a cancel only marks the watch
  // cancelled, so that the reactor outlives the task.
  void Load(ServiceCore& core, const std::string& name) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      loaded_ = true;
      subscription_ = core.watchers().Subscribe(
          name,
          [inbox = inbox_](const v1::Measurement& m) { inbox->Deliver(m); });
      absl::StatusOr<v1::Measurement> current =
          core.store().GetMeasurement(name);
      if (cancelled_) {
        action = FinishLocked(
            grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      } else {
        action = current.ok() ? EnqueueLocked(*current)
                              : FinishLocked(ToGrpcStatus(current.status()));
      }
    }
    Act(action);
  }

  // Outlives the reactor in the subscription's callback; `reactor` is cleared
  // before the reactor is deleted.
  struct Inbox {
    void Deliver(const v1::Measurement& m) {
      absl::MutexLock lock(&mu);
      if (reactor != nullptr) reactor->Enqueue(m);
    }
    absl::Mutex mu;
    WatchReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
  };

  // What to do once mu_ is released.
  struct Action {
    bool write = false;
    bool finish = false;
    grpc::Status status;
  };

  static Action FinishAction(grpc::Status status) {
    return Action{false, true, std::move(status)};
  }

  void Act(const Action& action) {
    if (action.write)
      StartWrite(&in_flight_bytes_);  // stable: only one write outstanding
    if (action.finish) {
      record_.Finish(action.status);
      Finish(action.status);
    }
  }

  void Enqueue(const v1::Measurement& m) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      action = EnqueueLocked(m);
    }
    Act(action);
  }

  Action EnqueueLocked(const v1::Measurement& m)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // States only move forward; an older one arriving late is stale.
    if (finished_ || m.state() < last_state_) return {};
    last_state_ = m.state();
    if (!pending_.empty() && pending_.back().state() == m.state()) {
      pending_.back() = m;
    } else {
      pending_.push_back(m);
    }
    return writing_ ? Action{} : WriteNextLocked();
  }

  Action WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (pending_.empty() || finished_) return {};
    in_flight_ = std::move(pending_.front());
    pending_.pop_front();
    if (absl::Status serialized =
            SerializeResponse(in_flight_, &in_flight_bytes_);
        !serialized.ok()) {
      return FinishLocked(ToGrpcStatus(serialized));
    }
    writing_ = true;
    return Action{true, false, grpc::Status::OK};
  }

  Action FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return {};
    finished_ = true;
    return FinishAction(std::move(status));
  }

  RpcRecord record_;
  std::shared_ptr<Inbox> inbox_;
  std::unique_ptr<MeasurementWatchers::Subscription> subscription_;
  absl::Mutex mu_;
  std::deque<v1::Measurement> pending_ ABSL_GUARDED_BY(mu_);
  // Written only while no write is outstanding, in_flight_bytes_ read by gRPC
  // during one.
  v1::Measurement in_flight_;
  grpc::ByteBuffer in_flight_bytes_;
  int last_state_ ABSL_GUARDED_BY(mu_) = v1::Measurement::STATE_UNSPECIFIED;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerUnaryReactor* CurvdService::CreateRun(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  // Read here: the AuthContext belongs to the call, not to the executor.
  const std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  std::string creator = auth != nullptr ? CallerName(*auth) : "";
  return Unary<v1::CreateRunRequest, v1::Run>(
      *core_, RpcMethod::kCreateRun,
      [creator = std::move(creator)](ServiceCore& core,
                                     const v1::CreateRunRequest& request,
                                     v1::Run* response) {
        return CreateRunImpl(core, request, response, creator);
      },
      context, request, response);
}

grpc::ServerUnaryReactor* CurvdService::GetRun(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::GetRunRequest, v1::Run>(
      *core_, RpcMethod::kGetRun, &GetRunImpl, context, request, response);
}

grpc::ServerUnaryReactor* CurvdService::ListRuns(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  // Each replica lists its own runs; the set's addresses let a client list
  // the others too.
  const ReplicaPlacement& placement = core_->options().placement;
  if (placement.replicas() > 1) {
    context->AddTrailingMetadata(std::string(kReplicasMetadataKey),
                                 absl::StrJoin(placement.addresses(), ","));
  }
  return Unary<v1::ListRunsRequest, v1::ListRunsResponse>(
      *core_, RpcMethod::kListRuns, &ListRunsImpl, context, request, response);
}

grpc::ServerReadReactor<grpc::ByteBuffer>* CurvdService::WriteBlob(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  return new WriteBlobReactor(*core_, context, response);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* CurvdService::ReadBlob(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return new ReadBlobReactor(*core_, context, *request);
}

grpc::ServerUnaryReactor* CurvdService::GetBlobStatus(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::GetBlobStatusRequest, v1::BlobStatus>(
      *core_, RpcMethod::kGetBlobStatus, &GetBlobStatusImpl, context, request,
      response);
}

grpc::ServerUnaryReactor* CurvdService::CreateCheckpoint(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::CreateCheckpointRequest, v1::Checkpoint>(
      *core_, RpcMethod::kCreateCheckpoint, &CreateCheckpointImpl, context,
      request, response);
}

grpc::ServerUnaryReactor* CurvdService::GetCheckpoint(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::GetCheckpointRequest, v1::Checkpoint>(
      *core_, RpcMethod::kGetCheckpoint, &GetCheckpointImpl, context, request,
      response);
}

grpc::ServerUnaryReactor* CurvdService::ListCheckpoints(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::ListCheckpointsRequest, v1::ListCheckpointsResponse>(
      *core_, RpcMethod::kListCheckpoints, &ListCheckpointsImpl, context,
      request, response);
}

grpc::ServerUnaryReactor* CurvdService::CreateMeasurement(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::CreateMeasurementRequest, v1::Measurement>(
      *core_, RpcMethod::kCreateMeasurement, &CreateMeasurementImpl, context,
      request, response);
}

grpc::ServerUnaryReactor* CurvdService::GetMeasurement(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::GetMeasurementRequest, v1::Measurement>(
      *core_, RpcMethod::kGetMeasurement, &GetMeasurementImpl, context, request,
      response);
}

grpc::ServerUnaryReactor* CurvdService::ListMeasurements(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::ListMeasurementsRequest, v1::ListMeasurementsResponse>(
      *core_, RpcMethod::kListMeasurements, &ListMeasurementsImpl, context,
      request, response);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* CurvdService::WatchMeasurement(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return new WatchReactor(*core_, context, *request);
}

grpc::ServerUnaryReactor* CurvdService::CancelMeasurement(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::CancelMeasurementRequest, v1::Measurement>(
      *core_, RpcMethod::kCancelMeasurement, &CancelMeasurementImpl, context,
      request, response);
}

grpc::ServerUnaryReactor* CurvdService::DeleteRun(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::DeleteRunRequest, v1::DeleteRunResponse>(
      *core_, RpcMethod::kDeleteRun, &DeleteRunImpl, context, request,
      response);
}

}  // namespace curvd::server

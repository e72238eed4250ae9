// The service's methods as plain functions over a ServiceCore: what the gRPC
// shims call, and what tests call without a network. Each returns the status of
// the call; the response is only meaningful when it is OK. All are thread-safe
// and bounded: they touch the store and the disk (so the gRPC shims run them
// on the storage executor), and never wait for a measurement. Requests are
// taken as ParseRequest (request_bytes.h) leaves them, every enum value a
// declared one: the gRPC shims refuse the others.
#ifndef CURVD_SERVER_SERVICE_IMPL_H_
#define CURVD_SERVER_SERVICE_IMPL_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "curvd/v1/curvd_service.pb.h"
#include "server/blob_store.h"
#include "server/service_core.h"

namespace curvd::server {

// Default and largest page_size of the List methods.
inline constexpr int kDefaultPageSize = 50;
inline constexpr int kMaxPageSize = 1000;

// The longest CreateMeasurementRequest.request_id, in bytes: it is a key of
// the store's index of measurements.
inline constexpr size_t kMaxRequestIdBytes = 256;

// Registers a run. Idempotent for the same run_id and model (returns the stored
// run); ALREADY_EXISTS for a different model; INVALID_ARGUMENT for a bad run_id
// or model; FAILED_PRECONDITION if the archive blob is not uploaded;
// PERMISSION_DENIED for an archive URI outside the data roots;
// RESOURCE_EXHAUSTED when the state directory is full (BlobStore::CheckSpace),
// as for CreateCheckpoint and CreateMeasurement. A new run records `creator`
// (CallerName of the call); a repeated create returns the stored run, creator
// included. An empty run_id gets a fresh one that this replica holds
// (ServiceOptions::placement).
absl::Status CreateRunImpl(ServiceCore& core,
                           const curvd::v1::CreateRunRequest& request,
                           curvd::v1::Run* response,
                           const std::string& creator = "");
absl::Status GetRunImpl(ServiceCore& core,
                        const curvd::v1::GetRunRequest& request,
                        curvd::v1::Run* response);
// The List methods page as curvd_service.proto's View says (server/
// list_pages.h): INVALID_ARGUMENT for a negative page_size, a view that is not
// a View value, or a page_token not of the same list; RESOURCE_EXHAUSTED for
// an item too large for a page in the view asked for.
absl::Status ListRunsImpl(ServiceCore& core,
                          const curvd::v1::ListRunsRequest& request,
                          curvd::v1::ListRunsResponse* response);

// Committed size of a blob: complete when uploaded, else the bytes of an upload
// to resume (0 for a blob never seen). INVALID_ARGUMENT for a malformed digest.
absl::Status GetBlobStatusImpl(ServiceCore& core,
                               const curvd::v1::GetBlobStatusRequest& request,
                               curvd::v1::BlobStatus* response);

// Records a checkpoint. Its format defaults to SAFETENSORS for a zoo run and
// TORCHSCRIPT otherwise. Idempotent for the same step and content,
// ALREADY_EXISTS for other content; NOT_FOUND for an unknown run;
// FAILED_PRECONDITION for a blob not uploaded; INVALID_ARGUMENT /
// PERMISSION_DENIED for a bad URI.
absl::Status CreateCheckpointImpl(
    ServiceCore& core, const curvd::v1::CreateCheckpointRequest& request,
    curvd::v1::Checkpoint* response);
absl::Status GetCheckpointImpl(ServiceCore& core,
                               const curvd::v1::GetCheckpointRequest& request,
                               curvd::v1::Checkpoint* response);
absl::Status ListCheckpointsImpl(
    ServiceCore& core, const curvd::v1::ListCheckpointsRequest& request,
    curvd::v1::ListCheckpointsResponse* response);

// Validates the spec and its sources and queues the measurement, returning it
// QUEUED. INVALID_ARGUMENT for a spec out of range or a malformed shard URI,
// PERMISSION_DENIED for a shard outside the data roots, NOT_FOUND for an
// unknown checkpoint, RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE
// while shutting down. The same non-empty request_id under the same parent
// returns the measurement created first; one over kMaxRequestIdBytes is
// INVALID_ARGUMENT.
absl::Status CreateMeasurementImpl(
    ServiceCore& core, const curvd::v1::CreateMeasurementRequest& request,
    curvd::v1::Measurement* response);
absl::Status GetMeasurementImpl(ServiceCore& core,
                                const curvd::v1::GetMeasurementRequest& request,
                                curvd::v1::Measurement* response);
// Parent "runs/{run}/checkpoints/{step}", or ".../checkpoints/-" for the whole
// run.
absl::Status ListMeasurementsImpl(
    ServiceCore& core, const curvd::v1::ListMeasurementsRequest& request,
    curvd::v1::ListMeasurementsResponse* response);
// See MeasurementLifecycle::Cancel.
absl::Status CancelMeasurementImpl(
    ServiceCore& core, const curvd::v1::CancelMeasurementRequest& request,
    curvd::v1::Measurement* response);

// Deletes a run with its checkpoints and measurements, in one store
// transaction, then the blobs that they referenced and nothing else stored
// does (a crash in between leaves unreferenced blobs, which
// ServiceCore::SweepBlobs removes once they are old; never a reference to a
// removed blob). FAILED_PRECONDITION while a measurement of the run is QUEUED
// or RUNNING (nothing is deleted), NOT_FOUND for an unknown run,
// INVALID_ARGUMENT for a malformed name.
absl::Status DeleteRunImpl(ServiceCore& core,
                           const curvd::v1::DeleteRunRequest& request,
                           curvd::v1::DeleteRunResponse* response);

// The server side of one WriteBlob stream, fed message by message. Thread-
// compatible (a stream delivers one message at a time).
class BlobUpload {
 public:
  // An upload charged to `client` (BlobStoreLimits::
  // max_partial_bytes_per_client): the gRPC peer's address without its port.
  BlobUpload(ServiceCore& core, std::string client)
      : core_(core), client_(std::move(client)) {}

  // Consumes one message. Returns an error that ends the stream, or OK with
  // `*done` set when the response is final (finish_write committed the blob, or
  // it was already stored); `*response` then holds it.
  absl::Status OnMessage(const curvd::v1::WriteBlobRequest& request, bool* done,
                         curvd::v1::BlobStatus* response);

  // The response for a stream the client closed without finish_write: the
  // committed size, to resume from.
  absl::Status OnClientDone(curvd::v1::BlobStatus* response);

  // Gives up the right to append, so that the next stream for the blob may open
  // it at once. Call before the stream's status is sent: the client may retry
  // as soon as it sees it, before this object is destroyed.
  void Release() { writer_.reset(); }

 private:
  ServiceCore& core_;
  const std::string client_;
  std::string digest_;
  std::unique_ptr<BlobWriter> writer_;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_SERVICE_IMPL_H_

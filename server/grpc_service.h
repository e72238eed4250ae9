// The gRPC face of the service: callback-API shims over service_impl.h that
// translate statuses and record RPC metrics. No reaction blocks or touches the
// disk: unary methods and each WriteBlob and ReadBlob chunk run on the core's
// storage executor, which finishes the call (or asks for the next chunk), and
// WatchMeasurement reads the stored state there and is then fed by
// measurement publishes.
#ifndef CURVD_SERVER_GRPC_SERVICE_H_
#define CURVD_SERVER_GRPC_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "curvd/v1/curvd_service.grpc.pb.h"
#include "server/service_core.h"

namespace curvd::server {

// Thread-safe; `core` must outlive the gRPC server that serves this service.
class CurvdService final : public curvd::v1::Curvd::CallbackService {
 public:
  explicit CurvdService(ServiceCore* core) : core_(core) {}

  grpc::ServerUnaryReactor* CreateRun(
      grpc::CallbackServerContext* context,
      const curvd::v1::CreateRunRequest* request,
      curvd::v1::Run* response) override;
  grpc::ServerUnaryReactor* GetRun(grpc::CallbackServerContext* context,
                                   const curvd::v1::GetRunRequest* request,
                                   curvd::v1::Run* response) override;
  grpc::ServerUnaryReactor* ListRuns(
      grpc::CallbackServerContext* context,
      const curvd::v1::ListRunsRequest* request,
      curvd::v1::ListRunsResponse* response) override;
  grpc::ServerReadReactor<curvd::v1::WriteBlobRequest>* WriteBlob(
      grpc::CallbackServerContext* context,
      curvd::v1::BlobStatus* response) override;
  grpc::ServerWriteReactor<curvd::v1::ReadBlobResponse>* ReadBlob(
      grpc::CallbackServerContext* context,
      const curvd::v1::ReadBlobRequest* request) override;
  grpc::ServerUnaryReactor* GetBlobStatus(
      grpc::CallbackServerContext* context,
      const curvd::v1::GetBlobStatusRequest* request,
      curvd::v1::BlobStatus* response) override;
  grpc::ServerUnaryReactor* CreateCheckpoint(
      grpc::CallbackServerContext* context,
      const curvd::v1::CreateCheckpointRequest* request,
      curvd::v1::Checkpoint* response) override;
  grpc::ServerUnaryReactor* GetCheckpoint(
      grpc::CallbackServerContext* context,
      const curvd::v1::GetCheckpointRequest* request,
      curvd::v1::Checkpoint* response) override;
  grpc::ServerUnaryReactor* ListCheckpoints(
      grpc::CallbackServerContext* context,
      const curvd::v1::ListCheckpointsRequest* request,
      curvd::v1::ListCheckpointsResponse* response) override;
  grpc::ServerUnaryReactor* CreateMeasurement(
      grpc::CallbackServerContext* context,
      const curvd::v1::CreateMeasurementRequest* request,
      curvd::v1::Measurement* response) override;
  grpc::ServerUnaryReactor* GetMeasurement(
      grpc::CallbackServerContext* context,
      const curvd::v1::GetMeasurementRequest* request,
      curvd::v1::Measurement* response) override;
  grpc::ServerUnaryReactor* ListMeasurements(
      grpc::CallbackServerContext* context,
      const curvd::v1::ListMeasurementsRequest* request,
      curvd::v1::ListMeasurementsResponse* response) override;
  grpc::ServerWriteReactor<curvd::v1::Measurement>* WatchMeasurement(
      grpc::CallbackServerContext* context,
      const curvd::v1::WatchMeasurementRequest* request) override;
  grpc::ServerUnaryReactor* CancelMeasurement(
      grpc::CallbackServerContext* context,
      const curvd::v1::CancelMeasurementRequest* request,
      curvd::v1::Measurement* response) override;
  grpc::ServerUnaryReactor* DeleteRun(
      grpc::CallbackServerContext* context,
      const curvd::v1::DeleteRunRequest* request,
      curvd::v1::DeleteRunResponse* response) override;

 private:
  ServiceCore* const core_;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_GRPC_SERVICE_H_

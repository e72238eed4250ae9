// The gRPC face of the service: callback-API shims over service_impl.h that
// translate statuses and record RPC metrics. No reaction blocks or touches the
// disk: unary methods and each WriteBlob and ReadBlob chunk run on the core's
// storage executor, which finishes the call (or asks for the next chunk), and
// WatchMeasurement reads the stored state there and is then fed by
// measurement publishes. Every method is registered raw and parses its
// request itself (request_bytes.h): bytes that are not a request are
// INVALID_ARGUMENT (docs/adr/0025-requests-parsed-by-the-service.md).
#ifndef CURVD_SERVER_GRPC_SERVICE_H_
#define CURVD_SERVER_GRPC_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "curvd/v1/curvd_service.grpc.pb.h"
#include "server/service_core.h"

namespace curvd::server {

// curvd.v1.Curvd with every method a raw (grpc::ByteBuffer) callback method.
// A method added to the proto must be added here (and to CurvdService);
// until it is, it is answered UNIMPLEMENTED.
// clang-format off
using RawCurvdService =
    curvd::v1::Curvd::WithRawCallbackMethod_CreateRun<
    curvd::v1::Curvd::WithRawCallbackMethod_GetRun<
    curvd::v1::Curvd::WithRawCallbackMethod_ListRuns<
    curvd::v1::Curvd::WithRawCallbackMethod_WriteBlob<
    curvd::v1::Curvd::WithRawCallbackMethod_GetBlobStatus<
    curvd::v1::Curvd::WithRawCallbackMethod_ReadBlob<
    curvd::v1::Curvd::WithRawCallbackMethod_CreateCheckpoint<
    curvd::v1::Curvd::WithRawCallbackMethod_GetCheckpoint<
    curvd::v1::Curvd::WithRawCallbackMethod_ListCheckpoints<
    curvd::v1::Curvd::WithRawCallbackMethod_CreateMeasurement<
    curvd::v1::Curvd::WithRawCallbackMethod_GetMeasurement<
    curvd::v1::Curvd::WithRawCallbackMethod_ListMeasurements<
    curvd::v1::Curvd::WithRawCallbackMethod_WatchMeasurement<
    curvd::v1::Curvd::WithRawCallbackMethod_CancelMeasurement<
    curvd::v1::Curvd::WithRawCallbackMethod_DeleteRun<
    curvd::v1::Curvd::Service>>>>>>>>>>>>>>>;
// clang-format on

// Each method takes the serialized request of its proto type and answers the
// serialized response. Thread-safe; `core` must outlive the gRPC server that
// serves this service.
class CurvdService final : public RawCurvdService {
 public:
  explicit CurvdService(ServiceCore* core) : core_(core) {}

  grpc::ServerUnaryReactor* CreateRun(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetRun(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListRuns(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* WriteBlob(
      grpc::CallbackServerContext* context,
      grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* ReadBlob(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* GetBlobStatus(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* CreateCheckpoint(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListCheckpoints(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* CreateMeasurement(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetMeasurement(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListMeasurements(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchMeasurement(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* CancelMeasurement(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* DeleteRun(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;

 private:
  ServiceCore* const core_;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_GRPC_SERVICE_H_

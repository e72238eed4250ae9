// The one place where absl::Status becomes grpc::Status at the RPC edge.
#ifndef CURVD_SERVER_GRPC_STATUS_H_
#define CURVD_SERVER_GRPC_STATUS_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <cstddef>

#include "absl/status/status.h"

namespace curvd::server {

// Messages longer than this are truncated: gRPC carries them in an HTTP/2
// trailer, which proxies and clients cap.
inline constexpr size_t kMaxGrpcErrorMessageBytes = 1024;

// Maps `status` to a grpc::Status with the same code (the numeric values of
// absl::StatusCode and grpc::StatusCode agree) and its message, truncated to
// kMaxGrpcErrorMessageBytes. Thread-safe; pure.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The same, and the owning replica's address of a misrouted call
// (OwnerAddress in replica_placement.h) added to `context`'s trailing metadata
// under kOwnerMetadataKey, where clients look for it. Call before the call
// finishes.
grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::ServerContextBase* context);

}  // namespace curvd::server

#endif  // CURVD_SERVER_GRPC_STATUS_H_

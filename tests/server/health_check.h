// A grpc.health.v1 Check through a generic stub, for tests without the health
// proto's generated code.
#ifndef CURVD_TESTS_SERVER_HEALTH_CHECK_H_
#define CURVD_TESTS_SERVER_HEALTH_CHECK_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"

namespace curvd::server {

// The bytes of a SERVING HealthCheckResponse.
inline const std::string kServing("\x08\x01", 2);

// The raw grpc.health.v1 HealthCheckResponse bytes for `service` ("" = the
// whole server), or the RPC's status when it fails.
inline absl::StatusOr<std::string> HealthCheck(
    std::shared_ptr<grpc::Channel> channel, const std::string& service) {
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

}  // namespace curvd::server

#endif  // CURVD_TESTS_SERVER_HEALTH_CHECK_H_

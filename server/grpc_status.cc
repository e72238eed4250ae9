#include "server/grpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace curvd::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string message(status.message());
  if (message.size() > kMaxGrpcErrorMessageBytes) {
    constexpr absl::string_view kEllipsis = "...";
    message.resize(kMaxGrpcErrorMessageBytes - kEllipsis.size());
    absl::StrAppend(&message, kEllipsis);
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message);
}

}  // namespace curvd::server

#include "server/grpc_status.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/replica_placement.h"

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

grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::ServerContextBase* context) {
  if (std::optional<std::string> owner = OwnerAddress(status)) {
    context->AddTrailingMetadata(std::string(kOwnerMetadataKey), *owner);
  }
  return ToGrpcStatus(status);
}

}  // namespace curvd::server

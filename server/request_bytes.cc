#include "server/request_bytes.h"

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include "absl/strings/str_cat.h"
#include "server/enum_values.h"

namespace curvd::server {

absl::Status ParseRequest(const grpc::ByteBuffer& bytes,
                          google::protobuf::Message* request) {
  grpc::ByteBuffer view(
      bytes);  // shares the slices; the reader wants a mutable one
  grpc::ProtoBufferReader reader(&view);
  if (!reader.status().ok() || !request->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request is not a valid ", request->GetDescriptor()->full_name()));
  }
  return CheckEnumValues(*request);
}

absl::Status SerializeResponse(const google::protobuf::Message& response,
                               grpc::ByteBuffer* bytes) {
  bytes->Clear();  // the writer fills an empty buffer only
  bool own_buffer = false;
  grpc::Status status =
      grpc::SerializationTraits<google::protobuf::Message>::Serialize(
          response, bytes, &own_buffer);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat(
        "cannot serialize a ", response.GetDescriptor()->full_name(), ": ",
        status.error_message()));
  }
  return absl::OkStatus();
}

}  // namespace curvd::server

// Requests and responses as the bytes gRPC carries. The service's methods are
// registered raw (docs/adr/0025-requests-parsed-by-the-service.md), so that it
// parses each request itself: bytes that are not a request are refused with
// INVALID_ARGUMENT saying so, where gRPC's own parsing answers UNIMPLEMENTED
// with no message.
#ifndef CURVD_SERVER_REQUEST_BYTES_H_
#define CURVD_SERVER_REQUEST_BYTES_H_

#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace curvd::server {

// Parses `bytes` into `request` (replacing what it held) and checks its enum
// values (CheckEnumValues, enum_values.h): every request the service takes
// passes here. InvalidArgument "request is not a valid
// curvd.v1.CreateRunRequest" (the request's type) when the bytes do not
// parse, or CheckEnumValues' refusal. `bytes` is left as it was. Thread-safe
// for distinct arguments.
absl::Status ParseRequest(const grpc::ByteBuffer& bytes,
                          google::protobuf::Message* request);

// `response` serialized into `bytes`, replacing what it held. Internal when it
// cannot be serialized (over 2 GiB).
absl::Status SerializeResponse(const google::protobuf::Message& response,
                               grpc::ByteBuffer* bytes);

}  // namespace curvd::server

#endif  // CURVD_SERVER_REQUEST_BYTES_H_

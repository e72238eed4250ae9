// Refuses enum values that a message's enum types do not declare. proto3 enums
// are open: a value a client sends that the schema lacks (a newer client's, or
// a wrong one) parses and would otherwise be read as the default.
#ifndef CURVD_SERVER_ENUM_VALUES_H_
#define CURVD_SERVER_ENUM_VALUES_H_

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace curvd::server {

// OK when every enum field that `message` sets, at any depth (singular,
// repeated and map fields, inside oneofs), holds a value its enum declares.
// Otherwise InvalidArgument naming the first field that does not by its path
// from `message`, its value and the enum's values, e.g.
// "spec.hessian_trace.distribution 99 is not a value of ProbeDistribution
// (PROBE_DISTRIBUTION_UNSPECIFIED = 0, ...)". Unset fields hold 0, which every
// proto3 enum declares. Pure; thread-safe.
absl::Status CheckEnumValues(const google::protobuf::Message& message);

}  // namespace curvd::server

#endif  // CURVD_SERVER_ENUM_VALUES_H_

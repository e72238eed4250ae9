// What the server and its clients agree on to route a call about a run to the
// replica that holds it (docs/adr/0019): which run a request is about, and the
// trailing-metadata keys that name replicas.
#ifndef CURVD_COMMON_REPLICA_ROUTING_H_
#define CURVD_COMMON_REPLICA_ROUTING_H_

#include <google/protobuf/message.h>

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace curvd::common {

// The trailing metadata of a call refused by a replica that does not hold its
// run (FAILED_PRECONDITION): the address of the replica that does.
inline constexpr absl::string_view kOwnerMetadataKey = "curvd-owner";
// The trailing metadata of ListRuns on a set of more than one replica: every
// replica's address, comma-separated in index order, for a client that lists
// them all.
inline constexpr absl::string_view kReplicasMetadataKey = "curvd-replicas";

// The run that `request` is about: the id in a string field `run_id`, or the
// run segment of a resource name ("runs/{run}/...") in a string field `name`,
// `parent` or `run`, the API's naming convention, so that a new method about a
// run is routed as soon as its request follows it. nullopt for a request about
// no run (ListRuns, a blob that names none) or with an empty or malformed
// name, which the method itself then answers. Pure.
std::optional<std::string> RunIdOf(const google::protobuf::Message& request);

}  // namespace curvd::common

#endif  // CURVD_COMMON_REPLICA_ROUTING_H_

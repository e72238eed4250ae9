// Which replica of a fixed set holds each run (docs/adr/0019). Every replica
// keeps its own store, so a run lives on one: the replica numbered
// JumpConsistentHash(RunPlacementKey(run_id), replicas). A call about a run is
// answered only there; any other replica refuses it with FAILED_PRECONDITION
// naming the owner, and its address travels in the `curvd-owner` trailer so
// that clients follow it. Placement depends on the run id and the replica
// count alone: a restarted replica owns what it owned, and runs created under
// N replicas stay where they are only while the count stays N. Immutable,
// hence thread-safe; copyable.
#ifndef CURVD_SERVER_REPLICA_PLACEMENT_H_
#define CURVD_SERVER_REPLICA_PLACEMENT_H_

#include <google/protobuf/message.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/replica_routing.h"

namespace curvd::server {

using ::curvd::common::kOwnerMetadataKey;
using ::curvd::common::kReplicasMetadataKey;

// The first 8 bytes of SHA-256(run_id), big-endian: a key every language can
// compute the same way. Pure.
uint64_t RunPlacementKey(absl::string_view run_id);

// Lamping and Veach's jump consistent hash: `key`'s bucket in [0, buckets),
// buckets >= 1. Growing buckets from n to n + 1 moves 1/(n + 1) of the keys,
// all of them to bucket n. Pure.
int JumpConsistentHash(uint64_t key, int buckets);

// `address_template` with "{index}" replaced by 0 .. replicas - 1, e.g.
// "curvd-{index}.curvd-headless:50051". INVALID_ARGUMENT when replicas < 1
// or the template has no "{index}" while replicas > 1. Pure.
absl::StatusOr<std::vector<std::string>> ExpandReplicaAddresses(
    absl::string_view address_template, int replicas);

// The ordinal a StatefulSet gives its pod's host name ("curvd-2" -> 2): the
// digits after the last '-'. INVALID_ARGUMENT naming `hostname` otherwise.
absl::StatusOr<int> ReplicaIndexFromHostname(absl::string_view hostname);

class ReplicaPlacement {
 public:
  // One replica that holds every run: a lone server.
  ReplicaPlacement() = default;

  // Replica `index` of the set whose addresses are `addresses`, one per
  // replica in index order (what clients can reach). INVALID_ARGUMENT unless
  // addresses is non-empty, no address is empty, and 0 <= index < its size.
  static absl::StatusOr<ReplicaPlacement> Create(
      int index, std::vector<std::string> addresses);

  int index() const { return index_; }
  int replicas() const { return replicas_; }
  // Empty for the default, lone replica.
  const std::vector<std::string>& addresses() const { return addresses_; }

  // The replica that holds run `run_id`.
  int OwnerOf(absl::string_view run_id) const;
  bool Owns(absl::string_view run_id) const {
    return OwnerOf(run_id) == index_;
  }

  // OK when `request` is about no run (common::RunIdOf) or about one this
  // replica holds; else
  // FAILED_PRECONDITION naming the run and the owning replica, whose address
  // is also the status's kOwnerMetadataKey payload (see OwnerAddress).
  absl::Status Check(const google::protobuf::Message& request) const;

 private:
  int index_ = 0;
  int replicas_ = 1;
  std::vector<std::string> addresses_;
};

// The owning replica's address that ReplicaPlacement::Check put in `status`,
// or nullopt.
std::optional<std::string> OwnerAddress(const absl::Status& status);

}  // namespace curvd::server

#endif  // CURVD_SERVER_REPLICA_PLACEMENT_H_

// Validation of the server's command-line configuration, kept out of main.cc so
// that it is tested.
#ifndef CURVD_SERVER_SERVER_CONFIG_H_
#define CURVD_SERVER_SERVER_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/replica_placement.h"
#include "server/server.h"

namespace curvd::server {

// --devices: "auto" is one worker per CUDA device, or one CPU worker without
// CUDA; otherwise a comma list of "cpu" and "cuda:N" (N < `cuda_device_count`),
// without repeats. InvalidArgument naming the bad entry. Pure.
absl::StatusOr<std::vector<std::string>> ResolveDevices(const std::string& flag,
                                                        int cuda_device_count);

// --data_roots: a comma list of existing directories, returned absolute; empty
// entries are skipped. InvalidArgument naming a root that is not a directory.
absl::StatusOr<std::vector<std::string>> ResolveDataRoots(
    const std::string& flag);

// --archive_checker: "auto" is curvd_archive_check in the directory of this
// process's executable (/proc/self/exe), as the build and the images place
// it; "none" is no checker, returned empty (archives are then loaded in the
// server's own process, where one that crashes LibTorch's loader ends the
// server); anything else is the checker's path. InvalidArgument naming the
// flag when the checker is not an executable regular file.
absl::StatusOr<std::string> ResolveArchiveChecker(const std::string& flag);

// The replica-set flags, as given.
struct ReplicaFlags {
  // --replica_index.
  int index = 0;
  // This host's name when --replica_index_from_hostname is set: the index is
  // then its StatefulSet ordinal ("curvd-2" -> 2) instead. Empty otherwise.
  std::string hostname;
  // --replicas.
  int replicas = 1;
  // --replica_address_template: "{index}" stands for each replica's index.
  std::string address_template;
  // --replica_addresses: a comma list, one per replica in index order.
  std::string addresses;
};

// This server's place in its replica set: --replica_addresses, or --replicas
// N with --replica_address_template expanded over 0 .. N - 1; --replicas 1
// with neither is a lone server that holds every run. InvalidArgument naming
// the flag (both address flags given, a count that disagrees with the list,
// an index out of range, a host name without an ordinal). Pure.
absl::StatusOr<ReplicaPlacement> ResolveReplicaPlacement(
    const ReplicaFlags& flags);

// Checks the ranges of every option (addresses present, the security options
// as ValidateSecurityOptions does, sizes and capacity
// positive, receive limit within gRPC's int range and at least 64 KiB, the
// exact-Hessian caps positive with the matrix cap <= the parameter cap, the
// workers' nice increment in 0..19) and
// makes state_dir absolute. InvalidArgument naming the flag.
absl::Status ValidateServerOptions(ServerOptions* options);

}  // namespace curvd::server

#endif  // CURVD_SERVER_SERVER_CONFIG_H_

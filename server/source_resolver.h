// Turns what a client names (blob digests, file:// and blob:// URIs, zoo specs)
// into local paths and core sources, enforcing the data roots.
#ifndef CURVD_SERVER_SOURCE_RESOLVER_H_
#define CURVD_SERVER_SOURCE_RESOLVER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/measurement.h"
#include "core/api/sources.h"
#include "curvd/v1/resources.pb.h"
#include "server/blob_store.h"

namespace curvd::server {

// Immutable after construction, hence thread-safe. `blobs` must outlive it.
// The sources it returns carry the roots their files are opened beneath when
// the engine reads them (core::ModelSource::data_roots): the data roots, and
// the blob directory for blobs.
class SourceResolver {
 public:
  // `archive_checker` goes into every TorchScript model source
  // (core::ModelSource::archive_checker).
  SourceResolver(const BlobStore* blobs, std::vector<std::string> data_roots,
                 std::string archive_checker = "");

  // The local path of a content reference: a committed blob digest
  // (FailedPrecondition if not uploaded) or a file:// URI under the data roots
  // (InvalidArgument for a bad form or "..", PermissionDenied outside the
  // roots).
  absl::StatusOr<std::string> ResolveContent(const std::string& digest,
                                             const std::string& uri) const;

  // The model to measure: the run's architecture with the checkpoint's weights.
  // A TorchScript checkpoint is a whole archive; a safetensors one is a state
  // dict for the run's archive or zoo model. Errors as ResolveContent, and
  // InvalidArgument for a zoo run with a TorchScript checkpoint.
  absl::StatusOr<core::ModelSource> ResolveModel(
      const curvd::v1::Run& run, const curvd::v1::Checkpoint& checkpoint) const;

  // The shard of a MeasurementSpec.shard_uri: file:// and builtin:// by
  // core::ParseShardUri with the data roots (so paths outside them are
  // PermissionDenied and ".." is InvalidArgument),
  // blob://sha256:<hex>[?limit=N& offset=N] as the committed blob, read as
  // safetensors.
  absl::StatusOr<core::ShardSpec> ResolveShard(const std::string& uri) const;

  // InvalidArgument unless `zoo` is an architecture the engine builds, within
  // the engine's size limits (core::ValidateZooSpec).
  static absl::Status ValidateZoo(const curvd::v1::ZooModel& zoo);

  // The number of parameters of a valid zoo MLP in `block` (all of them for
  // an empty block), counted without building the model
  // (core::ZooParameterSizes).
  static int64_t ZooBlockSize(const curvd::v1::ZooModel& zoo,
                              const core::ParameterBlock& block);

  // `status` with every path of the blob directory in its message replaced
  // by the blob's name (blob://sha256:HEX), so that no answer shows where
  // the server keeps its blobs; for errors of the engine that name the files
  // it read.
  absl::Status WithoutBlobPaths(const absl::Status& status) const;

 private:
  const BlobStore* blobs_;
  const std::vector<std::string> data_roots_;
  // The roots of a model source: the data roots and the blob directory.
  const std::vector<std::string> model_roots_;
  const std::string archive_checker_;
  // The blob directory as the store names it and as resolved, each with a
  // trailing '/'.
  std::vector<std::string> blob_dirs_;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_SOURCE_RESOLVER_H_

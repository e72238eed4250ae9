// What a stored measurement loads: its run's model at its checkpoint, and its
// shard; and the queue job that names them.
#ifndef CURVD_SERVER_MEASUREMENT_SOURCES_H_
#define CURVD_SERVER_MEASUREMENT_SOURCES_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/api/sources.h"
#include "curvd/v1/resources.pb.h"
#include "server/job_queue.h"
#include "server/source_resolver.h"
#include "server/store.h"

namespace curvd::server {

struct MeasurementSources {
  core::ModelSource model;
  core::ShardSpec shard;
};

// The sources of `measurement`, read from its checkpoint and run in `store`
// and resolved by `resolver`. Errors: InvalidArgument for a malformed name,
// and those of the store and of the resolver, as they are.
absl::StatusOr<MeasurementSources> ResolveSources(
    const curvd::v1::Measurement& measurement, Store& store,
    const SourceResolver& resolver);

// The queue job of the stored `measurement` of run `run_name`, keyed by its
// sources. Sources that do not resolve leave the keys empty: the measurement
// fails when it runs, on whichever device.
Job JobOf(const curvd::v1::Measurement& measurement,
          const std::string& run_name, Store& store,
          const SourceResolver& resolver);

}  // namespace curvd::server

#endif  // CURVD_SERVER_MEASUREMENT_SOURCES_H_

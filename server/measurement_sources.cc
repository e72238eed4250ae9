#include "server/measurement_sources.h"

#include "common/resource_names.h"
#include "common/status_macros.h"

namespace curvd::server {

using ::curvd::common::CheckpointNameOf;
using ::curvd::common::MeasurementName;
using ::curvd::common::ParseMeasurementName;
using ::curvd::common::RunName;

absl::StatusOr<MeasurementSources> ResolveSources(
    const curvd::v1::Measurement& measurement, Store& store,
    const SourceResolver& resolver) {
  CURVD_ASSIGN_OR_RETURN(MeasurementName name,
                         ParseMeasurementName(measurement.name()));
  CURVD_ASSIGN_OR_RETURN(
      curvd::v1::Checkpoint checkpoint,
      store.GetCheckpoint(CheckpointNameOf(name.run_id, name.step)));
  CURVD_ASSIGN_OR_RETURN(curvd::v1::Run run,
                         store.GetRun(RunName(name.run_id)));
  MeasurementSources sources;
  CURVD_ASSIGN_OR_RETURN(sources.model, resolver.ResolveModel(run, checkpoint));
  CURVD_ASSIGN_OR_RETURN(sources.shard,
                         resolver.ResolveShard(measurement.spec().shard_uri()));
  return sources;
}

Job JobOf(const curvd::v1::Measurement& measurement,
          const std::string& run_name, Store& store,
          const SourceResolver& resolver) {
  Job job{measurement.name(), run_name, measurement.spec().device(), {}, {}};
  absl::StatusOr<MeasurementSources> sources =
      ResolveSources(measurement, store, resolver);
  if (sources.ok()) {
    job.model_key = sources->model.cache_key;
    job.shard_key = sources->shard.cache_key;
  }
  return job;
}

}  // namespace curvd::server

// Parsing and formatting of resource names: runs/{run},
// runs/{run}/checkpoints/{step},
// runs/{run}/checkpoints/{step}/measurements/{id}.
#ifndef CURVD_COMMON_RESOURCE_NAMES_H_
#define CURVD_COMMON_RESOURCE_NAMES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace curvd::common {

struct CheckpointName {
  std::string run_id;
  int64_t step = 0;
};

struct MeasurementName {
  std::string run_id;
  int64_t step = 0;
  std::string measurement_id;
};

// InvalidArgument unless `run_id` matches [a-z0-9][a-z0-9-_.]{0,62}.
absl::Status ValidateRunId(absl::string_view run_id);

std::string RunName(absl::string_view run_id);
std::string CheckpointNameOf(absl::string_view run_id, int64_t step);
std::string MeasurementNameOf(absl::string_view checkpoint_name,
                              absl::string_view measurement_id);

// Each parser returns InvalidArgument naming `name` when it is malformed.
absl::StatusOr<std::string> ParseRunName(absl::string_view name);
absl::StatusOr<CheckpointName> ParseCheckpointName(absl::string_view name);
absl::StatusOr<MeasurementName> ParseMeasurementName(absl::string_view name);

// The checkpoint step a checkpoint or measurement name carries
// ("runs/r/checkpoints/{step}/..."), or -1 when the name has none.
int64_t StepFromName(absl::string_view name);

}  // namespace curvd::common

#endif  // CURVD_COMMON_RESOURCE_NAMES_H_

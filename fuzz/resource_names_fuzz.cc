// Fuzzes the resource-name grammar (common/resource_names.h) with one name.
// Contract held, beyond no crash and no sanitizer report: a name that parses
// as a run, checkpoint or measurement formats back to itself from its parts
// (each resource has exactly one name), its run id is valid, and
// StepFromName finds its step; a valid run id is a run name's only part.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/resource_names.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace curvd::common;
  const std::string name(reinterpret_cast<const char*>(data), size);

  if (ValidateRunId(name).ok()) {
    absl::StatusOr<std::string> run = ParseRunName(RunName(name));
    FUZZ_CHECK(run.ok() && *run == name);
  }
  if (absl::StatusOr<std::string> run = ParseRunName(name); run.ok()) {
    FUZZ_CHECK(ValidateRunId(*run).ok());
    FUZZ_CHECK(RunName(*run) == name);
  }
  if (absl::StatusOr<CheckpointName> checkpoint = ParseCheckpointName(name);
      checkpoint.ok()) {
    FUZZ_CHECK(ValidateRunId(checkpoint->run_id).ok());
    FUZZ_CHECK(checkpoint->step >= 0);
    FUZZ_CHECK(CheckpointNameOf(checkpoint->run_id, checkpoint->step) == name);
    FUZZ_CHECK(StepFromName(name) == checkpoint->step);
  }
  if (absl::StatusOr<MeasurementName> measurement = ParseMeasurementName(name);
      measurement.ok()) {
    FUZZ_CHECK(ValidateRunId(measurement->run_id).ok());
    FUZZ_CHECK(measurement->step >= 0);
    const std::string checkpoint =
        CheckpointNameOf(measurement->run_id, measurement->step);
    FUZZ_CHECK(MeasurementNameOf(checkpoint, measurement->measurement_id) ==
               name);
    FUZZ_CHECK(ParseCheckpointName(checkpoint).ok());
    FUZZ_CHECK(StepFromName(name) == measurement->step);
  }
  return 0;
}

#include "core/measurements/llc_calibration.h"

namespace curvd::core {

// Placeholder while the LLC is built (issue 12); replaced in the same session.
absl::StatusOr<LlcCalibrationResult> MeasureLlcCalibration(
    Objective&, const LlcCalibrationOptions&, const Progress&) {
  return absl::UnimplementedError(
      "the llc_calibration kind is being built (issue 12)");
}

}  // namespace curvd::core

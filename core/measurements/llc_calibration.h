// A grid of short LLC runs and the cell to use (issue 12): step size x
// localization (x n_beta), each cell a MeasureLlc run with the grid's values
// over LlcCalibrationOptions::base. Internal to core (includes torch).
#ifndef CURVD_CORE_MEASUREMENTS_LLC_CALIBRATION_H_
#define CURVD_CORE_MEASUREMENTS_LLC_CALIBRATION_H_

#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/llc_types.h"
#include "core/objective/objective.h"

namespace curvd::core {

// Runs every cell of the grid on `objective` (from its current parameters,
// restored after each cell) and recommends one by the rule of
// RecommendCalibrationCell. A cell whose chains diverge is a cell with
// diverged chains, not an error (kDropChain is forced per cell, and a cell
// where every chain diverged is recorded as rejected). InvalidArgument for
// an empty or non-positive axis; CancelledError between steps.
absl::StatusOr<LlcCalibrationResult> MeasureLlcCalibration(
    Objective& objective, const LlcCalibrationOptions& options,
    const Progress& progress);

// The rule, on cells already measured (pure, for its own test): a cell passes
// when no chain diverged, lambda_hat > 0, R-hat (when known) <= kLlcMaxRHat
// and no chain is still rising; among the passing cells of one
// (localization, n_beta) line, a cell is on the plateau when its lambda_hat
// agrees with the passing cell at the next smaller step size within 2
// combined standard errors. The recommendation is the largest step size on a
// plateau, the smallest localization among ties; `cells[i].rejection` says
// why each other cell lost, and the returned reason states the rule with the
// numbers. recommended = -1 when no cell is on a plateau.
void RecommendCalibrationCell(LlcCalibrationResult& result);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_LLC_CALIBRATION_H_

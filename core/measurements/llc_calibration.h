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

// The rule, on cells already measured (pure, for its own test;
// llc_calibration_rule.cc). A cell passes when no chain diverged,
// lambda_hat > 0, R-hat (when known) <= kLlcMaxRHat and at most a quarter
// of its chains are still rising (a cell whose chains all diverged is judged on that alone). Two
// cells agree when their lambda_hat differ by at most 2 sqrt(se_a^2 +
// se_b^2), se the llc_standard_error. On each (localization, n_beta) line, in
// step size order, the plateau is the first run of two or more consecutive
// passing cells, each agreeing with the one at the next smaller step size: a
// rejected cell or a disagreement ends it, and a later run (above a jump) is
// not the plateau; a line with one passing cell, or one step size, has none.
// The recommendation is the largest step size on a plateau, then the
// smallest localization, then the smallest n_beta. `cells[i].rejection` is
// set for every cell but the recommended one (why it failed, or why it lost)
// and `reason` states the rule with the recommended cell's numbers;
// recommended = -1, with a reason that counts the passing cells, when no cell
// is on a plateau. Reads only each cell's grid values and result, not the
// cells' order or earlier rejections, so a second call gives the same answer.
void RecommendCalibrationCell(LlcCalibrationResult& result);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_LLC_CALIBRATION_H_

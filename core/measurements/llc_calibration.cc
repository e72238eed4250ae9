#include "core/measurements/llc_calibration.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/measurements/llc.h"

namespace curvd::core {
namespace {

absl::Status CheckAxis(const std::vector<double>& axis, const char* name,
                       bool may_be_empty) {
  if (axis.empty() && !may_be_empty) {
    return absl::InvalidArgumentError(
        absl::StrCat("llc_calibration.", name, " must not be empty"));
  }
  for (double value : axis) {
    if (!(value > 0) || !std::isfinite(value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "llc_calibration.", name, " must hold finite values > 0, got ",
          value));
    }
  }
  return absl::OkStatus();
}

// A cell's result without its traces: the grid keeps the numbers the rule
// and a reader compare.
void TrimTraces(LlcResult& result) {
  for (LlcChain& chain : result.chains) {
    chain.loss_trace.clear();
    chain.llc_running_mean.clear();
    chain.distance_trace.clear();
    chain.full_loss_trace.clear();
  }
}

}  // namespace

absl::StatusOr<LlcCalibrationResult> MeasureLlcCalibration(
    Objective& objective, const LlcCalibrationOptions& options,
    const Progress& progress) {
  if (absl::Status s = CheckAxis(options.step_sizes, "step_sizes", false);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckAxis(options.localizations, "localizations", false);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckAxis(options.n_betas, "n_betas", true); !s.ok()) {
    return s;
  }
  // One n_beta "axis value" of 0 stands for the base's convention.
  const std::vector<double> n_betas =
      options.n_betas.empty() ? std::vector<double>{0} : options.n_betas;
  const size_t cells =
      n_betas.size() * options.localizations.size() * options.step_sizes.size();
  LlcCalibrationResult result;
  result.cells.reserve(cells);
  for (double n_beta : n_betas) {
    for (double gamma : options.localizations) {
      for (double epsilon : options.step_sizes) {
        LlcOptions cell_options = options.base;
        cell_options.step_size = epsilon;
        cell_options.localization = gamma;
        cell_options.on_divergence = DivergencePolicy::kDropChain;
        if (n_beta > 0) {
          cell_options.n_beta_convention = NBetaConvention::kGiven;
          cell_options.n_beta = n_beta;
        }
        const size_t index = result.cells.size();
        Progress cell_progress;
        cell_progress.cancelled = progress.cancelled;
        if (progress.report) {
          cell_progress.report = [&, index](double fraction,
                                            const std::string& message) {
            progress.report(
                (index + fraction) / cells,
                absl::StrFormat("cell %d of %d (eps %g, gamma %g): %s",
                                index + 1, cells, epsilon, gamma, message));
          };
        }
        LlcCalibrationCell cell;
        cell.step_size = epsilon;
        cell.localization = gamma;
        absl::StatusOr<LlcResult> run =
            MeasureLlc(objective, cell_options, cell_progress);
        if (run.ok()) {
          cell.result = *std::move(run);
          TrimTraces(cell.result);
          cell.n_beta = cell.result.n_beta;
        } else if (run.status().code() ==
                   absl::StatusCode::kFailedPrecondition) {
          // Every chain diverged: a cell of the grid, not an error.
          cell.n_beta = cell_options.n_beta_convention == NBetaConvention::kGiven
                            ? cell_options.n_beta
                            : 0;
          cell.result.chains_diverged = cell_options.chains;
          cell.rejection = std::string(run.status().message());
        } else {
          return run.status();
        }
        result.cells.push_back(std::move(cell));
        if (progress.report) {
          progress.report(static_cast<double>(index + 1) / cells,
                          absl::StrFormat("cell %d of %d done", index + 1,
                                          cells));
        }
      }
    }
  }
  RecommendCalibrationCell(result);
  return result;
}

}  // namespace curvd::core

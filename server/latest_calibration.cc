#include "server/latest_calibration.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;

constexpr int kPageSize = 100;

// The llc_calibration result of `m`, alone or in a plan, or nullptr.
const v1::LlcCalibrationResult* CalibrationOf(const v1::Measurement& m) {
  if (m.has_llc_calibration()) return &m.llc_calibration();
  if (m.has_plan() && m.plan().has_llc_calibration()) {
    return &m.plan().llc_calibration();
  }
  return nullptr;
}

// The latest-created SUCCEEDED measurement of `run_name` with a calibration
// result, or nullopt. The store lists in creation order.
absl::StatusOr<std::optional<v1::Measurement>> LatestCalibration(
    Store& store, const std::string& run_name) {
  std::optional<v1::Measurement> latest;
  std::string token;
  do {
    CURVD_ASSIGN_OR_RETURN(
        Page<v1::Measurement> page,
        store.ListMeasurements(run_name, "", kPageSize, token));
    for (v1::Measurement& m : page.items) {
      if (m.state() == v1::Measurement::SUCCEEDED &&
          CalibrationOf(m) != nullptr) {
        latest = std::move(m);
      }
    }
    token = page.next_page_token;
  } while (!token.empty());
  return latest;
}

}  // namespace

absl::Status ApplyLatestCalibration(Store& store, const std::string& run_name,
                                    v1::MeasurementSpec* spec) {
  const bool in_plan = spec->has_plan() && spec->plan().has_llc();
  v1::LlcSpec* llc = in_plan          ? spec->mutable_plan()->mutable_llc()
                     : spec->has_llc() ? spec->mutable_llc()
                                       : nullptr;
  if (llc == nullptr || !llc->use_latest_calibration()) {
    return absl::OkStatus();
  }
  const std::string field = in_plan ? "plan.llc" : "llc";
  for (const auto& [name, set] :
       {std::pair<const char*, bool>{"step_size", llc->has_step_size()},
        {"localization", llc->has_localization()},
        {"n_beta", llc->has_n_beta()}}) {
    if (set) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".", name, " must be unset with ", field,
                       ".use_latest_calibration: the calibration gives it"));
    }
  }
  CURVD_ASSIGN_OR_RETURN(std::optional<v1::Measurement> latest,
                         LatestCalibration(store, run_name));
  if (!latest.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ".use_latest_calibration: ", run_name,
        " has no SUCCEEDED llc_calibration measurement; run one first "
        "(curvctl measure --measure=llc_calibration) or give step_size, "
        "localization and n_beta"));
  }
  const v1::LlcCalibrationResult& calibration = *CalibrationOf(*latest);
  const int index = calibration.recommended();
  if (index < 0 || index >= calibration.cells_size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ".use_latest_calibration: the latest calibration of ",
        run_name, ", ", latest->name(),
        ", recommends no cell (", calibration.reason(),
        "); calibrate again on another grid or give step_size, localization "
        "and n_beta"));
  }
  const v1::LlcCalibrationCell& cell = calibration.cells(index);
  llc->set_step_size(cell.step_size());
  llc->set_localization(cell.localization());
  llc->set_n_beta(cell.n_beta());
  llc->set_calibration(latest->name());
  return absl::OkStatus();
}

}  // namespace curvd::server

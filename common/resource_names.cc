#include "common/resource_names.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace curvd::common {
namespace {

constexpr size_t kMaxIdLength = 63;

absl::Status Malformed(absl::string_view what, absl::string_view name,
                       absl::string_view form) {
  return absl::InvalidArgumentError(absl::StrCat("malformed ", what, " name \"",
                                                 name, "\": expected ", form));
}

// A step as CheckpointNameOf writes it: decimal digits only, no leading zero
// (but "0" itself), so that each checkpoint has exactly one name.
bool ValidStep(absl::string_view text, int64_t* step) {
  if (text.empty() || (text.size() > 1 && text[0] == '0')) return false;
  for (char c : text) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return absl::SimpleAtoi(text, step);
}

bool ValidMeasurementId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_') return false;
  }
  return true;
}

}  // namespace

absl::Status ValidateRunId(absl::string_view run_id) {
  bool ok = !run_id.empty() && run_id.size() <= kMaxIdLength &&
            (absl::ascii_islower(run_id[0]) || absl::ascii_isdigit(run_id[0]));
  for (char c : run_id) {
    ok = ok && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-' ||
                c == '_' || c == '.');
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "run_id \"", run_id, "\" must match [a-z0-9][a-z0-9-_.]{0,62}"));
  }
  return absl::OkStatus();
}

std::string RunName(absl::string_view run_id) {
  return absl::StrCat("runs/", run_id);
}

std::string CheckpointNameOf(absl::string_view run_id, int64_t step) {
  return absl::StrCat("runs/", run_id, "/checkpoints/", step);
}

std::string MeasurementNameOf(absl::string_view checkpoint_name,
                              absl::string_view measurement_id) {
  return absl::StrCat(checkpoint_name, "/measurements/", measurement_id);
}

absl::StatusOr<std::string> ParseRunName(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 2 || parts[0] != "runs" ||
      !ValidateRunId(parts[1]).ok()) {
    return Malformed("run", name, "runs/{run_id}");
  }
  return std::string(parts[1]);
}

absl::StatusOr<CheckpointName> ParseCheckpointName(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  CheckpointName parsed;
  if (parts.size() != 4 || parts[0] != "runs" ||
      !ValidateRunId(parts[1]).ok() || parts[2] != "checkpoints" ||
      !ValidStep(parts[3], &parsed.step)) {
    return Malformed("checkpoint", name, "runs/{run_id}/checkpoints/{step}");
  }
  parsed.run_id = std::string(parts[1]);
  return parsed;
}

absl::StatusOr<MeasurementName> ParseMeasurementName(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  MeasurementName parsed;
  if (parts.size() != 6 || parts[0] != "runs" ||
      !ValidateRunId(parts[1]).ok() || parts[2] != "checkpoints" ||
      !ValidStep(parts[3], &parsed.step) || parts[4] != "measurements" ||
      !ValidMeasurementId(parts[5])) {
    return Malformed("measurement", name,
                     "runs/{run_id}/checkpoints/{step}/measurements/{id}");
  }
  parsed.run_id = std::string(parts[1]);
  parsed.measurement_id = std::string(parts[5]);
  return parsed;
}

int64_t StepFromName(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    int64_t step;
    if (parts[i] == "checkpoints" && absl::SimpleAtoi(parts[i + 1], &step)) {
      return step;
    }
  }
  return -1;
}

}  // namespace curvd::common

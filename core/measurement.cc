#include "core/measurement.h"

#include "absl/strings/str_cat.h"

namespace curvd::core {
namespace {

constexpr int kMaxEigenpairs = 64;
constexpr int kMaxLanczosIterations = 1000;
constexpr int kMaxProbes = 100000;

absl::Status OutOfRange(const std::string& field, const std::string& rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", rule));
}

absl::Status ValidateLanczos(const LanczosOptions& o) {
  if (o.top_k < 1 || o.top_k > kMaxEigenpairs) {
    return OutOfRange("sharpness.top_k",
                      absl::StrCat("must be in [1, ", kMaxEigenpairs, "], got ", o.top_k));
  }
  if (o.bottom_k < 0 || o.bottom_k > kMaxEigenpairs) {
    return OutOfRange("sharpness.bottom_k",
                      absl::StrCat("must be in [0, ", kMaxEigenpairs, "], got ", o.bottom_k));
  }
  if (o.max_iterations < 1 || o.max_iterations > kMaxLanczosIterations) {
    return OutOfRange("sharpness.max_iterations",
                      absl::StrCat("must be in [1, ", kMaxLanczosIterations, "], got ",
                                   o.max_iterations));
  }
  if (!(o.relative_tolerance > 0 && o.relative_tolerance < 1)) {
    return OutOfRange("sharpness.relative_tolerance",
                      absl::StrCat("must be in (0, 1), got ", o.relative_tolerance));
  }
  return absl::OkStatus();
}

absl::Status ValidateTrace(const TraceOptions& o) {
  if (o.min_probes < 2 || o.min_probes > kMaxProbes) {
    return OutOfRange("hessian_trace.min_probes",
                      absl::StrCat("must be in [2, ", kMaxProbes,
                                   "] (a standard error needs two probes), got ",
                                   o.min_probes));
  }
  if (o.max_probes < o.min_probes || o.max_probes > kMaxProbes) {
    return OutOfRange("hessian_trace.max_probes",
                      absl::StrCat("must be in [min_probes=", o.min_probes, ", ",
                                   kMaxProbes, "], got ", o.max_probes));
  }
  if (!(o.target_relative_error >= 0 && o.target_relative_error < 1)) {
    return OutOfRange("hessian_trace.target_relative_error",
                      absl::StrCat("must be in [0, 1), got ", o.target_relative_error));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRequest(const MeasurementRequest& request) {
  if (request.objective.micro_batch_size < 0) {
    return OutOfRange("micro_batch_size",
                      absl::StrCat("must be >= 0, got ", request.objective.micro_batch_size));
  }
  switch (request.kind) {
    case MeasurementKind::kSharpness:
      return ValidateLanczos(request.lanczos);
    case MeasurementKind::kHessianTrace:
      return ValidateTrace(request.trace);
  }
  return absl::InvalidArgumentError("unknown measurement kind");
}

}  // namespace curvd::core

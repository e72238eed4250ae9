// Translation between the proto's MeasurementSpec / results and core's plain
// structs.
#ifndef CURVD_SERVER_SPEC_CONVERSION_H_
#define CURVD_SERVER_SPEC_CONVERSION_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/measurement.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::server {

// The core request for `spec`, with the documented defaults for unset fields
// (top_k 1, max_iterations 100, relative_tolerance 1e-6, min_probes 10,
// max_probes 200, target_relative_error 0.01, loss cross-entropy, float32,
// Rademacher; PRECISION_TF32 becomes core::Precision::kTf32) and validated by core::ValidateRequest. InvalidArgument naming
// the field when the kind is unset or a value is out of range (explicit top_k =
// 0, min_probes = 0, ...). Pure; the shard URI is not examined here.
absl::StatusOr<core::MeasurementRequest> ToCoreRequest(
    const curvd::v1::MeasurementSpec& spec);

// Writes `result` into `measurement`'s diagnostics and result oneof. Pure.
void ApplyResult(const core::MeasurementResult& result,
                 curvd::v1::Measurement* measurement);

// "sharpness", "hessian_trace" or "unspecified": the `kind` label of metrics
// and the store's kind column.
std::string KindName(const curvd::v1::MeasurementSpec& spec);

}  // namespace curvd::server

#endif  // CURVD_SERVER_SPEC_CONVERSION_H_

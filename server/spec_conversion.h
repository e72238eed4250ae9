// Translation between the proto's MeasurementSpec / results and core's plain
// structs.
#ifndef CURVD_SERVER_SPEC_CONVERSION_H_
#define CURVD_SERVER_SPEC_CONVERSION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/measurement.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::server {

// What the server's configuration adds to every request: the caps that no
// client may raise (--exact_hessian_max_parameters and
// --exact_hessian_max_matrix_parameters).
struct RequestLimits {
  int64_t exact_hessian_max_parameters = 20000;
  int64_t exact_hessian_max_matrix_parameters = 1000;
};

// The core request for `spec`, with the documented defaults for unset fields
// (the proto's comments: top_k 1, max_iterations 100, relative_tolerance 1e-6,
// min_probes 10, max_probes 200, target_relative_error 0.01, SLQ runs 10 steps
// 100 grid_points 1000 sigma_fraction 0.01 log_threshold 1e-6, Hutch++
// max_hvps 300 min_residual_probes 10, power iteration max_iterations 1000,
// loss slice points 41 on [-1, 1] along the top eigenvector, loss
// cross-entropy, float32, Rademacher, the Hessian; PRECISION_TF32 becomes
// core::Precision::kTf32), the exact-Hessian caps of `limits`, and validated
// by core::ValidateRequest. A plan becomes kPlan with request.plan listing its
// kinds in the proto's field order. InvalidArgument naming the field when the
// kind is unset or a value is out of range (explicit top_k = 0, min_probes =
// 0, grid_points = 0, a loss expansion without rho, an empty plan, ...). Pure;
// the shard URI and the model are not examined here.
absl::StatusOr<core::MeasurementRequest> ToCoreRequest(
    const curvd::v1::MeasurementSpec& spec,
    const RequestLimits& limits = RequestLimits());

// The kinds a plan sets, in the proto's field order (empty for an empty plan).
std::vector<core::MeasurementKind> PlanKinds(
    const curvd::v1::MeasurementPlanSpec& plan);

// Writes `result` into `measurement`'s diagnostics and result oneof; for a
// plan, the MeasurementPlanResult holds the results of the kinds that
// measurement->spec().plan() sets. Pure.
void ApplyResult(const core::MeasurementResult& result,
                 curvd::v1::Measurement* measurement);

// The name of the spec's kind field ("sharpness", "hessian_trace",
// "spectral_density", "hutchpp", "trace_h3", "loss_expansion",
// "exact_hessian", "power_iteration", "loss_slice", "plan") or "unspecified":
// the `kind` label of metrics and the store's kind column.
std::string KindName(const curvd::v1::MeasurementSpec& spec);

}  // namespace curvd::server

#endif  // CURVD_SERVER_SPEC_CONVERSION_H_

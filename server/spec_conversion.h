// Translation between the proto's MeasurementSpec / results and core's plain
// structs, by the table of kinds (kind_table.h).
#ifndef CURVD_SERVER_SPEC_CONVERSION_H_
#define CURVD_SERVER_SPEC_CONVERSION_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/measurements.h"
#include "core/api/measurement.h"
#include "curvd/v1/resources.pb.h"
#include "server/kind_table.h"

namespace curvd::server {

// The core request for `spec`: each method starts from core's default options
// (the option structs' initialisers, which the proto's comments cite) and
// takes what the spec sets; unset enums are cross-entropy, float32,
// Rademacher and the Hessian; PRECISION_TF32 becomes core::Precision::kTf32;
// the exact-Hessian caps are those of `limits`. A plan's kinds become its
// methods. Validated by core::ValidateRequest, a plan's fields named
// "plan.<kind>.<field>". InvalidArgument naming the field when the kind is
// unset or a value is out of range (explicit top_k = 0, min_probes = 0,
// grid_points = 0, a loss expansion without rho, an empty plan, ...). Pure;
// the shard URI and the model are not examined here.
absl::StatusOr<core::MeasurementRequest> ToCoreRequest(
    const curvd::v1::MeasurementSpec& spec,
    const RequestLimits& limits = RequestLimits());

// `spec` with every value `request` (ToCoreRequest of it) runs with written
// out: the shared fields and each kind's options, defaults included, so that
// ToCoreRequest of the result gives `request` again. What Measurement's
// effective_spec stores. Pure.
curvd::v1::MeasurementSpec EffectiveSpec(
    const curvd::v1::MeasurementSpec& spec,
    const core::MeasurementRequest& request);

// Writes `result` into `measurement`'s diagnostics and result oneof: the
// result of each method that measurement->spec() asks for into the field of
// its kind, in the MeasurementPlanResult when the spec is a plan; and, where
// measurement->effective_spec() has the kind, the options the method ran
// with into it (what the run resolved: llc's n_beta of its convention). Pure.
void ApplyResult(const core::MeasurementResult& result,
                 curvd::v1::Measurement* measurement);

// The kind's name, for metrics and the store (common/measurements.h).
using ::curvd::common::KindName;

}  // namespace curvd::server

#endif  // CURVD_SERVER_SPEC_CONVERSION_H_

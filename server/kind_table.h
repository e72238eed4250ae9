// The server edge's table of measurement kinds: one row per kind, read from
// core::Method, with how to read the kind's spec message, how to write it back
// with every value the server used (the effective spec), and how to write its
// result. Everything on the edge that handles kinds (ToCoreRequest,
// EffectiveSpec, ApplyResult, the "must set a kind" message) loops over it.
#ifndef CURVD_SERVER_KIND_TABLE_H_
#define CURVD_SERVER_KIND_TABLE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/api/measurement_methods.h"
#include "google/protobuf/message.h"

namespace curvd::server {

// What the server's configuration adds to every request: the caps that no
// client may raise (--exact_hessian_max_parameters,
// --exact_hessian_max_matrix_parameters and --gop_max_*, each the flag of the
// field's name). Defaults: core's.
struct RequestLimits {
  int64_t exact_hessian_max_parameters =
      core::ExactHessianOptions().max_parameters;
  int64_t exact_hessian_max_matrix_parameters =
      core::ExactHessianOptions().max_matrix_parameters;
  int64_t gop_max_samples = core::GopOptions().max_samples;
  int64_t gop_max_gram_floats = core::GopOptions().max_gram_floats;
  int64_t gop_max_gradient_floats = core::GopOptions().max_gradient_floats;
  int64_t gop_max_eigenvector_floats =
      core::GopOptions().max_eigenvector_floats;
};

struct KindRow {
  // core's kName: the field of the kind in MeasurementSpec's `kind` oneof,
  // MeasurementPlanSpec, Measurement's `result` oneof and
  // MeasurementPlanResult, whose message types it reads and writes.
  std::string name;
  // The kind's spec and result message types (SharpnessSpec and
  // SharpnessResult, ...).
  const google::protobuf::Descriptor* spec_type = nullptr;
  const google::protobuf::Descriptor* result_type = nullptr;
  // The method with core's default options, overridden by what `spec` (the
  // kind's spec message) sets, and the caps of `limits`. Internal when `spec`
  // is not the kind's spec type. Not validated (core::ValidateRequest does).
  std::function<absl::StatusOr<core::Method>(
      const google::protobuf::Message& spec, const RequestLimits& limits)>
      read_spec;
  // Writes `method`'s options (of this row's kind) into `spec`, every field
  // set, so that read_spec of it gives the same options.
  std::function<void(const core::Method& method,
                     google::protobuf::Message* spec)>
      write_spec;
  // Writes `method`'s result (of this row's kind) into `result`.
  std::function<void(const core::Method& method,
                     google::protobuf::Message* result)>
      write_result;
};

// One row per alternative of core::Method, in its order. Thread-safe.
const std::vector<KindRow>& KindTable();

// The row named `name`, or nullptr.
const KindRow* FindKindRow(absl::string_view name);

}  // namespace curvd::server

#endif  // CURVD_SERVER_KIND_TABLE_H_

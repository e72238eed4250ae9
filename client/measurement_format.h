// How curvctl prints resources: an aligned table for people, CSV for
// spreadsheets, and the proto JSON mapping for scripts (field names in
// lowerCamelCase, enums by name, int64 as strings, as every proto library
// reads).
#ifndef CURVD_CLIENT_MEASUREMENT_FORMAT_H_
#define CURVD_CLIENT_MEASUREMENT_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/resource_names.h"
#include "curvd/v1/curvd_service.pb.h"

namespace curvd::client {

// The checkpoint step a name carries, or -1 (common/resource_names.h).
using ::curvd::common::StepFromName;

// The proto JSON mapping of any message, one line or indented.
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message,
                                   bool pretty);

// Measurements as {"measurements": [...]}, the JSON of a
// ListMeasurementsResponse.
absl::StatusOr<std::string> MeasurementsToJson(
    const std::vector<curvd::v1::Measurement>& measurements);

// Header line then one RFC 4180 line per measurement (fields with commas,
// quotes or newlines are quoted). Columns: name, step, kind, state, value and
// standard_error (the headline of a single-kind measurement: the sharpness,
// a trace, the loss expansion's total, the top exact or power eigenvalue, the
// slice's v^T H v; empty for a plan), top_eigenvalues (';'-separated),
// iterations, probes, loss, num_samples, num_parameters, hvps, device,
// compute_seconds, error_message, operator (hessian or ggn), then each kind's
// scalars in the kind table's order (KindRow::csv_columns: sharpness, trace,
// trace_standard_error, density_trace, ..., slice_eigenvalue,
// slice_curvature), filled for every result a plan holds. Arrays (densities,
// eigenvalue lists, matrices, slices) are left to the JSON.
std::string MeasurementsToCsv(
    const std::vector<curvd::v1::Measurement>& measurements);

// An aligned table: step, kind, state, value (the headline, as in the CSV),
// detail (± standard error and what the result adds, or the error), loss,
// device, seconds, id. A plan's row is followed by one indented row per
// result.
std::string MeasurementsToTable(
    const std::vector<curvd::v1::Measurement>& measurements);

// An aligned table of runs: id, model, checkpoints, created.
std::string RunsToTable(const std::vector<curvd::v1::Run>& runs);

// A one-line summary of a model spec: "mlp:784,64,10:tanh" or "archive
// sha256:…".
std::string ModelSummary(const curvd::v1::ModelSpec& model);

// A one-line summary of a measurement's outcome for progress displays:
// "sharpness 12.3 (top 12.3 4.5 …)", "hessian_trace 456 ± 7.8 (20 probes)",
// "plan: KIND VALUE (...); KIND VALUE (...)", or the state and error.
std::string MeasurementSummary(const curvd::v1::Measurement& measurement);

}  // namespace curvd::client

#endif  // CURVD_CLIENT_MEASUREMENT_FORMAT_H_

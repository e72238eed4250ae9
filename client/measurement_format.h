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
// slice's v^T H v, gop's trace; empty for a plan), top_eigenvalues (';'-separated),
// iterations, probes, loss, num_samples, num_parameters, hvps, device,
// compute_seconds, error_message, operator (hessian or ggn), then each kind's
// scalars in the kind table's order (KindRow::csv_columns: sharpness, trace,
// trace_standard_error, density_trace, ..., slice_eigenvalue,
// slice_curvature, ..., gop_trace, ...), filled for every result a plan holds, and last
// train_loss: the trainer's Checkpoint.train_loss of the measurement's step
// from `checkpoints` (0 when the trainer sent none: proto3 cannot tell them
// apart), empty when `checkpoints` has no such step. Arrays (densities,
// eigenvalue lists, matrices, slices) are left to the JSON.
std::string MeasurementsToCsv(
    const std::vector<curvd::v1::Measurement>& measurements,
    const std::vector<curvd::v1::Checkpoint>& checkpoints = {});

// The wide form: a header, then one RFC 4180 line per checkpoint step and
// objective (shard URI, operator, parameter block: numbers of different data
// or operators never share a row), in step order. Columns: step, shard,
// operator (hessian or ggn), block (names, then prefixes with a trailing '*',
// ';'-separated; empty for all parameters), train_loss (as in
// MeasurementsToCsv), loss (of the row's latest SUCCEEDED measurement), then
// the kinds' scalars (KindRow::csv_columns, the kind table's order) that at
// least one row has. Only SUCCEEDED measurements count, a plan's results as
// measurements of their kinds; of several results of one kind in a row, the
// latest by create_time (for equal times, the later in `measurements`) gives
// all of that kind's columns, and a column a result fills for another kind
// (loss_expansion's trace_h3) only when that kind has no result there. A
// checkpoint of `checkpoints` without a SUCCEEDED measurement gets a row of
// its step and train_loss alone.
std::string MeasurementsToWideCsv(
    const std::vector<curvd::v1::Measurement>& measurements,
    const std::vector<curvd::v1::Checkpoint>& checkpoints);

// The per-chain traces of the llc and llc_calibration results (alone or in a
// plan) of `measurements`: a header, then one RFC 4180 line per measurement,
// chain and stored draw. Columns: name, step, kind, cell (the calibration
// cell's index; empty for llc), chain (from 0), draw (the draw's index, the
// stored point times trace_stride), loss, llc_running_mean, distance
// (||w - w*||) and chain_diverged. The full-shard losses are left to the
// JSON.
std::string LlcTracesToCsv(
    const std::vector<curvd::v1::Measurement>& measurements);

// An aligned table: step, kind, state, value (the headline, as in the CSV),
// detail (± standard error and what the result adds, or the error), loss,
// device, seconds, id. A plan's row is followed by one indented row per
// result. Below the table, each SUCCEEDED result with notes (KindSummary:
// the LLC's summary line and WARNING lines, a calibration's grid with the
// recommended cell marked "*", gop's metrics with a line per layer) gets a line "ID KIND:" and its notes,
// indented.
std::string MeasurementsToTable(
    const std::vector<curvd::v1::Measurement>& measurements);

// An aligned table of runs: id, model, checkpoints, created, creator (the
// token name that created it; empty on a server without authentication).
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

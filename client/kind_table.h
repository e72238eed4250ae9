// curvctl's one table of measurement kinds: everything the CLI knows about a
// kind (its flags, how they fill its spec, how its result reads in a table, a
// summary line and the CSV) is in its row, and the rest of curvctl loops over
// the rows. Adding a kind to the proto means adding its row here; a test walks
// the proto descriptors and fails while one is missing.
#ifndef CURVD_CLIENT_KIND_TABLE_H_
#define CURVD_CLIENT_KIND_TABLE_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/command_line.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::client {

// What a person and a spreadsheet see of one result: its headline number
// (with a standard error where it has one), a short detail, and its CSV
// columns at full precision.
struct KindSummary {
  double value = 0;
  std::optional<double> standard_error;
  std::string detail;  // "top 12.5 0.1", "12 probes": never the ± part
  std::map<std::string, std::string> columns;  // CSV column -> value
  // Lines a person reads below the table: an estimate's own summary line,
  // "WARNING: ..." when a diagnostic says it is not to be trusted, a grid.
  std::vector<std::string> notes = {};
};

// One measurement kind, as curvctl handles it.
struct KindRow {
  // The kind's field name, the same in MeasurementSpec's `kind` oneof,
  // MeasurementPlanSpec, Measurement's `result` oneof and
  // MeasurementPlanResult: "sharpness", "trace_h3", ...
  std::string name;
  // The message types of those fields: the spec (e.g. SharpnessSpec) and the
  // result (e.g. SharpnessResult).
  const google::protobuf::Descriptor* spec_type = nullptr;
  const google::protobuf::Descriptor* result_type = nullptr;
  // The `measure` flags this kind introduces, in --help order; a flag that
  // several kinds read belongs to the first of them.
  std::vector<FlagDef> new_flags;
  // The names (without "--") of every flag fill_spec reads: its own, those
  // of earlier kinds it shares, and --seed.
  std::vector<std::string> flags;
  // The CSV columns this kind introduces, in order. `summarize` fills these
  // and may fill the common top_eigenvalues, iterations and probes, or
  // another kind's columns for a result it contains.
  std::vector<std::string> csv_columns;
  // Sets `spec`, a message of spec_type, from parsed `measure` flags. Only
  // flags given on the command line set `optional` fields, so the server's
  // defaults apply to the rest and an explicit 0 reaches its range check.
  // InvalidArgument for a bad enum value (--distribution, --direction).
  // Internal when `spec` is not a spec_type.
  std::function<absl::Status(const ParsedFlags& flags,
                             google::protobuf::Message* spec)>
      fill_spec;
  // The summary of `result`, a message of result_type (an empty summary for
  // any other message), measured with `spec`, a message of spec_type (the
  // measurement's effective_spec; its default instance when unknown).
  std::function<KindSummary(const google::protobuf::Message& result,
                            const google::protobuf::Message& spec)>
      summarize;
};

// Every kind except "plan" (which runs several of them), in the proto's field
// order. Built once; never destroyed.
const std::vector<KindRow>& CurvctlKinds();

// The row named `name`, or null when no kind is called that.
const KindRow* FindKind(const std::string& name);

// The kinds' names joined by ", ", for help and error messages.
std::string KindNameList();

}  // namespace curvd::client

#endif  // CURVD_CLIENT_KIND_TABLE_H_

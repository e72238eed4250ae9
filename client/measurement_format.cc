#include "client/measurement_format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/curvd_client.h"
#include "client/kind_table.h"
#include "client/number_format.h"

namespace curvd::client {
namespace {

namespace v1 = ::curvd::v1;

std::string CsvField(const std::string& field) {
  if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
  std::string quoted = "\"";
  for (char c : field) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::string Seconds(const google::protobuf::Duration& duration) {
  return ShortNumber(duration.seconds() + duration.nanos() * 1e-9);
}

std::string MeasurementId(const std::string& name) {
  std::vector<std::string> parts = absl::StrSplit(name, '/');
  return parts.empty() ? name : parts.back();
}

// Pads every column to its widest cell; the last column is left ragged.
std::string AlignedTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string text;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (i + 1 == row.size()) {
        absl::StrAppend(&text, row[i]);
      } else {
        absl::StrAppend(&text, row[i],
                        std::string(widths[i] - row[i].size() + 2, ' '));
      }
    }
    absl::StrAppend(&text, "\n");
  }
  return text;
}

// One result of a measurement: its kind's name and its summary.
struct ResultSummary {
  std::string kind;
  KindSummary summary;
};

// The per-kind CSV columns, after the common ones: each kind's, in the
// table's order.
std::vector<std::string> KindColumns() {
  std::vector<std::string> columns;
  for (const KindRow& row : CurvctlKinds()) {
    columns.insert(columns.end(), row.csv_columns.begin(),
                   row.csv_columns.end());
  }
  return columns;
}

// "± 0.5 (12 probes)", or the detail alone without a standard error.
std::string Detail(const KindSummary& r) {
  if (!r.standard_error) return r.detail;
  return absl::StrCat("± ", ShortNumber(*r.standard_error), " (", r.detail,
                      ")");
}

// "hessian_trace 300 ± 4.5 (12 probes)": a result in one phrase.
std::string Phrase(const ResultSummary& result) {
  const KindSummary& r = result.summary;
  return absl::StrCat(result.kind, " ", ShortNumber(r.value),
                      r.standard_error
                          ? absl::StrCat(" ± ", ShortNumber(*r.standard_error))
                          : "",
                      " (", r.detail, ")");
}

// Appends the summaries of the results `holder` sets, in the table's order:
// `holder` is a Measurement (its one result) or a MeasurementPlanResult (the
// same field names).
void AddSummaries(const google::protobuf::Message& holder,
                  std::vector<ResultSummary>* out) {
  const google::protobuf::Reflection* reflection = holder.GetReflection();
  for (const KindRow& row : CurvctlKinds()) {
    const google::protobuf::FieldDescriptor* field =
        holder.GetDescriptor()->FindFieldByName(row.name);
    if (field != nullptr && reflection->HasField(holder, field)) {
      out->push_back(
          {row.name, row.summarize(reflection->GetMessage(holder, field))});
    }
  }
}

// Every result of `m`: one, or a plan's several, in the proto's field order.
std::vector<ResultSummary> Summaries(const v1::Measurement& m) {
  std::vector<ResultSummary> summaries;
  AddSummaries(m, &summaries);
  if (m.has_plan()) AddSummaries(m.plan(), &summaries);
  return summaries;
}

}  // namespace

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message,
                                   bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  // Scripts should not have to know proto3's rule that zero values are omitted.
  options.always_print_primitive_fields = true;
  std::string json;
  auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("JSON encoding failed: ", status.ToString()));
  }
  return json;
}

absl::StatusOr<std::string> MeasurementsToJson(
    const std::vector<v1::Measurement>& measurements) {
  v1::ListMeasurementsResponse response;
  for (const v1::Measurement& measurement : measurements) {
    *response.add_measurements() = measurement;
  }
  return ToJson(response, /*pretty=*/true);
}

std::string MeasurementsToCsv(
    const std::vector<v1::Measurement>& measurements) {
  const std::vector<std::string> kind_columns = KindColumns();
  std::string csv = absl::StrCat(
      "name,step,kind,state,value,standard_error,top_eigenvalues,iterations,"
      "probes,loss,num_samples,num_parameters,hvps,device,compute_seconds,"
      "error_message,operator,",
      absl::StrJoin(kind_columns, ","), "\n");
  for (const v1::Measurement& m : measurements) {
    const std::vector<ResultSummary> summaries = Summaries(m);
    std::map<std::string, std::string> columns;
    for (const ResultSummary& summary : summaries) {
      columns.insert(summary.summary.columns.begin(),
                     summary.summary.columns.end());
    }
    // A plan has no one headline: its numbers are in the kinds' columns.
    std::string value, standard_error;
    if (summaries.size() == 1 && !m.has_plan()) {
      const KindSummary& headline = summaries[0].summary;
      value = RoundTripNumber(headline.value);
      if (headline.standard_error) {
        standard_error = RoundTripNumber(*headline.standard_error);
      }
    }
    const bool has_diagnostics = m.has_diagnostics();
    const v1::Diagnostics& d = m.diagnostics();
    std::vector<std::string> fields = {
        m.name(),
        absl::StrCat(StepFromName(m.name())),
        KindName(m.spec()),
        v1::Measurement::State_Name(m.state()),
        value,
        standard_error,
        columns["top_eigenvalues"],
        columns["iterations"],
        columns["probes"],
        has_diagnostics ? RoundTripNumber(d.loss()) : "",
        has_diagnostics ? absl::StrCat(d.num_samples()) : "",
        has_diagnostics ? absl::StrCat(d.num_parameters()) : "",
        has_diagnostics ? absl::StrCat(d.hvps()) : "",
        d.device(),
        has_diagnostics ? RoundTripNumber(d.compute_duration().seconds() +
                                          d.compute_duration().nanos() * 1e-9)
                        : "",
        m.error_message(),
        has_diagnostics
            ? (d.operator_() == v1::OPERATOR_GGN ? "ggn" : "hessian")
            : "",
    };
    for (const std::string& column : kind_columns) {
      fields.push_back(columns[column]);
    }
    std::vector<std::string> escaped;
    for (const std::string& field : fields) escaped.push_back(CsvField(field));
    absl::StrAppend(&csv, absl::StrJoin(escaped, ","), "\n");
  }
  return csv;
}

std::string MeasurementsToTable(
    const std::vector<v1::Measurement>& measurements) {
  std::vector<std::vector<std::string>> rows = {{"STEP", "KIND", "STATE",
                                                 "VALUE", "DETAIL", "LOSS",
                                                 "DEVICE", "SECONDS", "ID"}};
  for (const v1::Measurement& m : measurements) {
    const bool has_diagnostics = m.has_diagnostics();
    std::vector<std::string> row = {
        absl::StrCat(StepFromName(m.name())),
        KindName(m.spec()),
        v1::Measurement::State_Name(m.state()),
        "",
        "",
        has_diagnostics ? ShortNumber(m.diagnostics().loss()) : "",
        m.diagnostics().device(),
        has_diagnostics ? Seconds(m.diagnostics().compute_duration()) : "",
        MeasurementId(m.name())};
    if (m.state() == v1::Measurement::FAILED ||
        m.state() == v1::Measurement::CANCELLED) {
      row[4] = m.error_message();
      rows.push_back(std::move(row));
      continue;
    }
    const std::vector<ResultSummary> summaries = Summaries(m);
    if (!m.has_plan()) {
      if (!summaries.empty()) {
        row[3] = ShortNumber(summaries[0].summary.value);
        row[4] = Detail(summaries[0].summary);
      }
      rows.push_back(std::move(row));
      continue;
    }
    // A plan: its own row, then one indented row per result.
    rows.push_back(row);
    for (const ResultSummary& summary : summaries) {
      rows.push_back({"", absl::StrCat("  ", summary.kind), "",
                      ShortNumber(summary.summary.value),
                      Detail(summary.summary), "", "", "", ""});
    }
  }
  return AlignedTable(rows);
}

std::string ModelSummary(const v1::ModelSpec& model) {
  switch (model.source_case()) {
    case v1::ModelSpec::kArchiveDigest:
      return absl::StrCat("archive ", model.archive_digest());
    case v1::ModelSpec::kArchiveUri:
      return absl::StrCat("archive ", model.archive_uri());
    case v1::ModelSpec::kZoo:
      return absl::StrCat(
          model.zoo().architecture(), ":",
          absl::StrJoin(model.zoo().layer_widths(), ","), ":",
          model.zoo().activation().empty() ? "tanh" : model.zoo().activation());
    case v1::ModelSpec::SOURCE_NOT_SET:
      break;
  }
  return "(none)";
}

std::string RunsToTable(const std::vector<v1::Run>& runs) {
  std::vector<std::vector<std::string>> rows = {
      {"RUN", "MODEL", "CHECKPOINTS", "CREATED"}};
  for (const v1::Run& run : runs) {
    rows.push_back(
        {run.name(), ModelSummary(run.model()),
         absl::StrCat(run.checkpoint_count()),
         run.has_create_time()
             ? google::protobuf::util::TimeUtil::ToString(run.create_time())
             : ""});
  }
  return AlignedTable(rows);
}

std::string MeasurementSummary(const v1::Measurement& m) {
  switch (m.state()) {
    case v1::Measurement::FAILED:
    case v1::Measurement::CANCELLED:
      return absl::StrCat(KindName(m.spec()), " ",
                          v1::Measurement::State_Name(m.state()), ": ",
                          m.error_message());
    default:
      break;
  }
  const std::vector<ResultSummary> summaries = Summaries(m);
  if (summaries.empty()) {
    return absl::StrCat(KindName(m.spec()), " ",
                        v1::Measurement::State_Name(m.state()));
  }
  std::vector<std::string> phrases;
  for (const ResultSummary& summary : summaries) {
    phrases.push_back(Phrase(summary));
  }
  return absl::StrCat(m.has_plan() ? "plan: " : "",
                      absl::StrJoin(phrases, "; "));
}

}  // namespace curvd::client

#include "client/measurement_format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "absl/algorithm/container.h"
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
// `specs` is the MeasurementSpec or MeasurementPlanSpec that holds the kinds'
// specs under the same names.
void AddSummaries(const google::protobuf::Message& holder,
                  const google::protobuf::Message& specs,
                  std::vector<ResultSummary>* out) {
  const google::protobuf::Reflection* reflection = holder.GetReflection();
  for (const KindRow& row : CurvctlKinds()) {
    const google::protobuf::FieldDescriptor* field =
        holder.GetDescriptor()->FindFieldByName(row.name);
    const google::protobuf::FieldDescriptor* spec_field =
        specs.GetDescriptor()->FindFieldByName(row.name);
    if (field != nullptr && spec_field != nullptr &&
        reflection->HasField(holder, field)) {
      out->push_back(
          {row.name,
           row.summarize(reflection->GetMessage(holder, field),
                         specs.GetReflection()->GetMessage(specs, spec_field))});
    }
  }
}

// The spec `m` ran with: its effective spec, or its spec before those were
// stored.
const v1::MeasurementSpec& RanWith(const v1::Measurement& m) {
  return m.has_effective_spec() ? m.effective_spec() : m.spec();
}

// Every result of `m`: one, or a plan's several, in the proto's field order.
std::vector<ResultSummary> Summaries(const v1::Measurement& m) {
  std::vector<ResultSummary> summaries;
  AddSummaries(m, RanWith(m), &summaries);
  if (m.has_plan()) AddSummaries(m.plan(), RanWith(m).plan(), &summaries);
  return summaries;
}

// The notes of `m`'s results, under a line naming the measurement and kind.
std::string Notes(const v1::Measurement& m) {
  std::string text;
  for (const ResultSummary& summary : Summaries(m)) {
    if (summary.summary.notes.empty()) continue;
    absl::StrAppend(&text, "\n", MeasurementId(m.name()), " ", summary.kind,
                    ":\n");
    for (const std::string& line : summary.summary.notes) {
      absl::StrAppend(&text, "  ", line, "\n");
    }
  }
  return text;
}

// The trainer's loss of the checkpoint at `step` as a CSV field: empty when
// `checkpoints` does not hold that step.
std::string TrainLoss(const std::vector<v1::Checkpoint>& checkpoints,
                      int64_t step) {
  for (const v1::Checkpoint& checkpoint : checkpoints) {
    if (checkpoint.step() == step) {
      return RoundTripNumber(checkpoint.train_loss());
    }
  }
  return "";
}

std::string CsvLine(const std::vector<std::string>& fields) {
  std::vector<std::string> escaped;
  for (const std::string& field : fields) escaped.push_back(CsvField(field));
  return absl::StrCat(absl::StrJoin(escaped, ","), "\n");
}

std::string OperatorName(const v1::Diagnostics& d) {
  return d.operator_() == v1::OPERATOR_GGN ? "ggn" : "hessian";
}

// A parameter block as text: its names, then its prefixes with a trailing
// '*', ';'-separated; empty for every parameter.
std::string BlockText(const v1::ParameterBlock& block) {
  std::vector<std::string> parts(block.names().begin(), block.names().end());
  for (const std::string& prefix : block.prefixes()) {
    parts.push_back(absl::StrCat(prefix, "*"));
  }
  return absl::StrJoin(parts, ";");
}

// What one row of the wide CSV holds apart from its step: measurements of a
// checkpoint on different data, operators or blocks are different numbers.
struct WideKey {
  int64_t step = 0;
  std::string shard, op, block;
  bool operator<(const WideKey& o) const {
    return std::tie(step, shard, op, block) <
           std::tie(o.step, o.shard, o.op, o.block);
  }
};

// The latest SUCCEEDED result of one kind in a row: by create_time, and for
// equal times the one later in the list.
struct Latest {
  std::pair<int64_t, int32_t> time;
  KindSummary summary;
};

std::pair<int64_t, int32_t> CreateTime(const v1::Measurement& m) {
  return {m.create_time().seconds(), m.create_time().nanos()};
}

// The scalar columns of one wide row: each kind's own columns from its latest
// result, then the columns a result fills for another kind (loss_expansion's
// trace_h3) where that kind has none.
std::map<std::string, std::string> WideColumns(
    const std::map<std::string, Latest>& latest_by_kind) {
  std::map<std::string, std::string> columns;
  for (const auto& [kind, latest] : latest_by_kind) {
    const KindRow* row = FindKind(kind);
    for (const auto& [column, value] : latest.summary.columns) {
      if (row != nullptr && absl::c_linear_search(row->csv_columns, column)) {
        columns[column] = value;
      }
    }
  }
  for (const auto& [kind, latest] : latest_by_kind) {
    columns.insert(latest.summary.columns.begin(),
                   latest.summary.columns.end());
  }
  return columns;
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

std::string MeasurementsToCsv(const std::vector<v1::Measurement>& measurements,
                              const std::vector<v1::Checkpoint>& checkpoints) {
  const std::vector<std::string> kind_columns = KindColumns();
  std::string csv = absl::StrCat(
      "name,step,kind,state,value,standard_error,top_eigenvalues,iterations,"
      "probes,loss,num_samples,num_parameters,hvps,device,compute_seconds,"
      "error_message,operator,",
      absl::StrJoin(kind_columns, ","), ",train_loss\n");
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
        has_diagnostics ? OperatorName(d) : "",
    };
    for (const std::string& column : kind_columns) {
      fields.push_back(columns[column]);
    }
    fields.push_back(TrainLoss(checkpoints, StepFromName(m.name())));
    absl::StrAppend(&csv, CsvLine(fields));
  }
  return csv;
}

std::string MeasurementsToWideCsv(
    const std::vector<v1::Measurement>& measurements,
    const std::vector<v1::Checkpoint>& checkpoints) {
  struct Row {
    std::pair<int64_t, int32_t> loss_time;
    std::string loss;
    std::map<std::string, Latest> latest_by_kind;
  };
  std::map<WideKey, Row> rows;
  for (const v1::Measurement& m : measurements) {
    if (m.state() != v1::Measurement::SUCCEEDED) continue;
    Row& row =
        rows[{StepFromName(m.name()), m.spec().shard_uri(),
              OperatorName(m.diagnostics()), BlockText(m.spec().block())}];
    const auto time = CreateTime(m);
    if (row.loss.empty() || time >= row.loss_time) {
      row.loss_time = time;
      row.loss = RoundTripNumber(m.diagnostics().loss());
    }
    for (ResultSummary& result : Summaries(m)) {
      auto [it, inserted] = row.latest_by_kind.try_emplace(result.kind);
      if (inserted || time >= it->second.time) {
        it->second = {time, std::move(result.summary)};
      }
    }
  }
  // A checkpoint without a SUCCEEDED measurement keeps its train_loss.
  for (const v1::Checkpoint& checkpoint : checkpoints) {
    const int64_t step = checkpoint.step();
    const bool measured = absl::c_any_of(
        rows, [step](const auto& entry) { return entry.first.step == step; });
    if (!measured) rows[{step, "", "", ""}];
  }

  std::vector<std::map<std::string, std::string>> scalars;
  for (const auto& [key, row] : rows) {
    scalars.push_back(WideColumns(row.latest_by_kind));
  }
  // Only the scalars some row has, in the kind table's order.
  std::vector<std::string> columns;
  for (const std::string& column : KindColumns()) {
    if (absl::c_any_of(scalars, [&column](const auto& row) {
          return row.count(column) > 0;
        })) {
      columns.push_back(column);
    }
  }
  std::vector<std::string> header = {"step",  "shard",      "operator",
                                     "block", "train_loss", "loss"};
  header.insert(header.end(), columns.begin(), columns.end());
  std::string csv = CsvLine(header);
  size_t i = 0;
  for (const auto& [key, row] : rows) {
    std::map<std::string, std::string>& values = scalars[i++];
    std::vector<std::string> fields = {
        absl::StrCat(key.step),           key.shard, key.op, key.block,
        TrainLoss(checkpoints, key.step), row.loss};
    for (const std::string& column : columns) {
      fields.push_back(values[column]);
    }
    absl::StrAppend(&csv, CsvLine(fields));
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
  std::string table = AlignedTable(rows);
  for (const v1::Measurement& m : measurements) {
    if (m.state() == v1::Measurement::SUCCEEDED) {
      absl::StrAppend(&table, Notes(m));
    }
  }
  return table;
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
      {"RUN", "MODEL", "CHECKPOINTS", "CREATED", "CREATOR"}};
  for (const v1::Run& run : runs) {
    rows.push_back(
        {run.name(), ModelSummary(run.model()),
         absl::StrCat(run.checkpoint_count()),
         run.has_create_time()
             ? google::protobuf::util::TimeUtil::ToString(run.create_time())
             : "",
         run.creator()});
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

namespace {

// Appends the trace rows of one LLC result: `cell` is the calibration cell's
// index, or empty for an llc result.
void AppendTraceRows(const v1::Measurement& m, const std::string& kind,
                     const std::string& cell, const v1::LlcResult& r,
                     std::string* csv) {
  const int stride = std::max(1, r.trace_stride());
  for (int c = 0; c < r.chains_size(); ++c) {
    const v1::LlcChain& chain = r.chains(c);
    for (int i = 0; i < chain.loss_trace_size(); ++i) {
      const auto at = [i](const google::protobuf::RepeatedField<double>& t) {
        return i < t.size() ? RoundTripNumber(t[i]) : std::string();
      };
      absl::StrAppend(
          csv, CsvLine({m.name(), absl::StrCat(StepFromName(m.name())), kind,
                        cell, absl::StrCat(c), absl::StrCat(i * stride),
                        RoundTripNumber(chain.loss_trace(i)),
                        at(chain.llc_running_mean()),
                        at(chain.distance_trace()),
                        chain.diverged() ? "true" : "false"}));
    }
  }
}

}  // namespace

std::string LlcTracesToCsv(const std::vector<v1::Measurement>& measurements) {
  std::string csv =
      CsvLine({"name", "step", "kind", "cell", "chain", "draw", "loss",
               "llc_running_mean", "distance", "chain_diverged"});
  for (const v1::Measurement& m : measurements) {
    const v1::MeasurementPlanResult& plan = m.plan();
    for (const v1::LlcResult* llc :
         {m.has_llc() ? &m.llc() : nullptr,
          plan.has_llc() ? &plan.llc() : nullptr}) {
      if (llc != nullptr) AppendTraceRows(m, "llc", "", *llc, &csv);
    }
    for (const v1::LlcCalibrationResult* calibration :
         {m.has_llc_calibration() ? &m.llc_calibration() : nullptr,
          plan.has_llc_calibration() ? &plan.llc_calibration() : nullptr}) {
      if (calibration == nullptr) continue;
      for (int i = 0; i < calibration->cells_size(); ++i) {
        AppendTraceRows(m, "llc_calibration", absl::StrCat(i),
                        calibration->cells(i).result(), &csv);
      }
    }
  }
  return csv;
}

}  // namespace curvd::client

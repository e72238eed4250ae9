#include "client/measurement_format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <map>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/curvd_client.h"

namespace curvd::client {
namespace {

namespace v1 = ::curvd::v1;

// Shortest round-trip representation: CSV and JSON consumers get full
// precision.
std::string Number(double value) { return absl::StrFormat("%.17g", value); }

// Enough digits for a person to compare values.
std::string Short(double value) { return absl::StrFormat("%.6g", value); }

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
  return Short(duration.seconds() + duration.nanos() * 1e-9);
}

std::string MeasurementId(const std::string& name) {
  std::vector<std::string> parts = absl::StrSplit(name, '/');
  return parts.empty() ? name : parts.back();
}

std::string TopEigenvalues(const v1::SharpnessResult& result,
                           const std::string& separator, bool full) {
  std::vector<std::string> values;
  for (const v1::Eigenpair& pair : result.top()) {
    values.push_back(full ? Number(pair.value()) : Short(pair.value()));
  }
  return absl::StrJoin(values, separator);
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

// What a person and a spreadsheet see of one result: its headline number
// (with a standard error where it has one), a short detail, and its CSV
// columns at full precision.
struct ResultSummary {
  std::string kind;  // the result's field name: "sharpness", "trace_h3", ...
  double value = 0;
  std::optional<double> standard_error;
  std::string detail;  // "top 12.5 0.1", "12 probes": never the ± part
  std::map<std::string, std::string> columns;
};

// The per-kind CSV columns, after the common ones, in order.
const std::vector<std::string>& KindColumns() {
  static const auto* columns =
      new std::vector<std::string>{"sharpness",
                                   "trace",
                                   "trace_standard_error",
                                   "density_trace",
                                   "density_trace_standard_error",
                                   "density_rank",
                                   "density_sigma",
                                   "hutchpp_trace",
                                   "hutchpp_standard_error",
                                   "sketch_frobenius_fraction",
                                   "hutchinson_standard_error_same_hvps",
                                   "trace_h3",
                                   "trace_h3_standard_error",
                                   "first_order_term",
                                   "second_order_term",
                                   "noise_term",
                                   "noise_term_standard_error",
                                   "total",
                                   "total_standard_error",
                                   "rank",
                                   "positive",
                                   "negative",
                                   "min_eigenvalue",
                                   "max_eigenvalue",
                                   "condition_number",
                                   "power_eigenvalues",
                                   "slice_eigenvalue",
                                   "slice_curvature"};
  return *columns;
}

// "± 0.5 (12 probes)", or the detail alone without a standard error.
std::string Detail(const ResultSummary& r) {
  if (!r.standard_error) return r.detail;
  return absl::StrCat("± ", Short(*r.standard_error), " (", r.detail, ")");
}

// "hessian_trace 300 ± 4.5 (12 probes)": a result in one phrase.
std::string Phrase(const ResultSummary& r) {
  return absl::StrCat(
      r.kind, " ", Short(r.value),
      r.standard_error ? absl::StrCat(" ± ", Short(*r.standard_error)) : "",
      " (", r.detail, ")");
}

ResultSummary Summarize(const v1::SharpnessResult& r) {
  return {"sharpness",
          r.sharpness(),
          std::nullopt,
          absl::StrCat("top ", TopEigenvalues(r, " ", /*full=*/false)),
          {{"sharpness", Number(r.sharpness())},
           {"top_eigenvalues", TopEigenvalues(r, ";", /*full=*/true)},
           {"iterations", absl::StrCat(r.iterations())}}};
}

// Hutchinson's tr(H) (`kind` "hessian_trace", columns "trace...") or tr(H^3)
// ("trace_h3").
ResultSummary SummarizeTrace(const std::string& kind, const std::string& column,
                             const v1::HessianTraceResult& r) {
  ResultSummary s{kind,
                  r.trace(),
                  r.standard_error(),
                  absl::StrCat(r.probes(), " probes"),
                  {}};
  s.columns = {{column, Number(r.trace())},
               {column + "_standard_error", Number(r.standard_error())}};
  if (kind == "hessian_trace") s.columns["probes"] = absl::StrCat(r.probes());
  return s;
}

// The estimate of tr(f(H)) for `function` ("x", "1{|x|>t}"), if present.
const v1::SpectralEstimate* Estimate(const v1::SpectralDensityResult& r,
                                     const std::string& function) {
  for (const v1::SpectralEstimate& e : r.estimates()) {
    if (e.function() == function) return &e;
  }
  return nullptr;
}

ResultSummary Summarize(const v1::SpectralDensityResult& r) {
  ResultSummary s{"spectral_density", 0, std::nullopt, "", {}};
  s.detail = absl::StrCat(r.runs_size(), " runs, ", r.grid_size(),
                          " grid points, sigma ", Short(r.sigma()));
  s.columns["density_sigma"] = Number(r.sigma());
  if (const v1::SpectralEstimate* trace = Estimate(r, "x")) {
    s.value = trace->trace();
    s.standard_error = trace->standard_error();
    s.detail = absl::StrCat("tr(H); ", s.detail);
    s.columns["density_trace"] = Number(trace->trace());
    s.columns["density_trace_standard_error"] = Number(trace->standard_error());
  }
  if (const v1::SpectralEstimate* rank = Estimate(r, "1{|x|>t}")) {
    absl::StrAppend(&s.detail, ", rank ~", Short(rank->trace()));
    s.columns["density_rank"] = Number(rank->trace());
  }
  return s;
}

ResultSummary Summarize(const v1::HutchppResult& r) {
  ResultSummary s{"hutchpp",
                  r.trace(),
                  r.standard_error(),
                  absl::StrCat("sketch ", r.sketch_size(), " + ",
                               r.residual_probes(), " probes; sketch holds ",
                               Short(100 * r.sketch_frobenius_fraction()),
                               "% of |H|_F^2; Hutchinson, same HVPs: +/-",
                               Short(r.hutchinson_standard_error_same_hvps())),
                  {}};
  s.columns = {
      {"hutchpp_trace", Number(r.trace())},
      {"hutchpp_standard_error", Number(r.standard_error())},
      {"sketch_frobenius_fraction", Number(r.sketch_frobenius_fraction())},
      {"hutchinson_standard_error_same_hvps",
       Number(r.hutchinson_standard_error_same_hvps())}};
  return s;
}

ResultSummary Summarize(const v1::LossExpansionResult& r) {
  ResultSummary s{
      "loss_expansion", r.total(), r.total_standard_error(), "", {}};
  s.detail = absl::StrCat("total = ", Short(r.first_order_term()), " + ",
                          Short(r.second_order_term()), " + noise ",
                          Short(r.noise_term()));
  s.columns = {
      {"first_order_term", Number(r.first_order_term())},
      {"second_order_term", Number(r.second_order_term())},
      {"noise_term", Number(r.noise_term())},
      {"noise_term_standard_error", Number(r.noise_term_standard_error())},
      {"total", Number(r.total())},
      {"total_standard_error", Number(r.total_standard_error())},
      {"trace_h3", Number(r.trace_h3().trace())},
      {"trace_h3_standard_error", Number(r.trace_h3().standard_error())}};
  return s;
}

ResultSummary Summarize(const v1::ExactHessianResult& r) {
  ResultSummary s{"exact_hessian", 0, std::nullopt, "", {}};
  s.detail =
      absl::StrCat("rank ", r.rank(), " of ", r.eigenvalues_size(), " (",
                   r.positive(), " positive, ", r.negative(),
                   " negative), condition ", Short(r.condition_number()));
  s.columns = {{"rank", absl::StrCat(r.rank())},
               {"positive", absl::StrCat(r.positive())},
               {"negative", absl::StrCat(r.negative())},
               {"condition_number", Number(r.condition_number())}};
  if (!r.eigenvalues().empty()) {
    // Ascending: the last is the top eigenvalue.
    s.value = r.eigenvalues(r.eigenvalues_size() - 1);
    s.detail = absl::StrCat("min ", Short(r.eigenvalues(0)), ", ", s.detail);
    s.columns["min_eigenvalue"] = Number(r.eigenvalues(0));
    s.columns["max_eigenvalue"] = Number(s.value);
  }
  return s;
}

ResultSummary Summarize(const v1::PowerIterationResult& r) {
  std::vector<std::string> short_values, full_values;
  for (const v1::PowerEigenpair& pair : r.pairs()) {
    short_values.push_back(Short(pair.value()));
    full_values.push_back(Number(pair.value()));
  }
  return {"power_iteration",
          r.pairs().empty() ? 0 : r.pairs(0).value(),
          std::nullopt,
          absl::StrCat("top ", absl::StrJoin(short_values, " "),
                       r.converged() ? "" : " (not converged)"),
          {{"power_eigenvalues", absl::StrJoin(full_values, ";")}}};
}

ResultSummary Summarize(const v1::LossSliceResult& r) {
  std::string range;
  if (!r.t().empty()) {
    range = absl::StrCat(" on [", Short(r.t(0)), ", ",
                         Short(r.t(r.t_size() - 1)), "]");
  }
  const auto [low, high] =
      std::minmax_element(r.loss().begin(), r.loss().end());
  std::string losses;
  if (low != r.loss().end()) {
    losses = absl::StrCat(", loss ", Short(*low), "..", Short(*high));
  }
  return {"loss_slice",
          r.direction_curvature(),
          std::nullopt,
          absl::StrCat("v^T H v; ", r.loss_size(), " points", range, losses,
                       "; ", r.direction()),
          {{"slice_eigenvalue", Number(r.eigenvalue())},
           {"slice_curvature", Number(r.direction_curvature())}}};
}

// The summaries of the results `holder` sets: a Measurement's (its one
// result) or a MeasurementPlanResult's (the same field names).
template <typename Holder>
void AddSummaries(const Holder& h, std::vector<ResultSummary>* out) {
  if (h.has_sharpness()) out->push_back(Summarize(h.sharpness()));
  if (h.has_hessian_trace()) {
    out->push_back(SummarizeTrace("hessian_trace", "trace", h.hessian_trace()));
  }
  if (h.has_spectral_density()) out->push_back(Summarize(h.spectral_density()));
  if (h.has_hutchpp()) out->push_back(Summarize(h.hutchpp()));
  if (h.has_trace_h3()) {
    out->push_back(SummarizeTrace("trace_h3", "trace_h3", h.trace_h3()));
  }
  if (h.has_loss_expansion()) out->push_back(Summarize(h.loss_expansion()));
  if (h.has_exact_hessian()) out->push_back(Summarize(h.exact_hessian()));
  if (h.has_power_iteration()) out->push_back(Summarize(h.power_iteration()));
  if (h.has_loss_slice()) out->push_back(Summarize(h.loss_slice()));
}

// Every result of `m`: one, or a plan's several, in the proto's field order.
std::vector<ResultSummary> Summaries(const v1::Measurement& m) {
  std::vector<ResultSummary> summaries;
  AddSummaries(m, &summaries);
  if (m.has_plan()) AddSummaries(m.plan(), &summaries);
  return summaries;
}

}  // namespace

int64_t StepFromName(const std::string& name) {
  std::vector<std::string> parts = absl::StrSplit(name, '/');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    int64_t step;
    if (parts[i] == "checkpoints" && absl::SimpleAtoi(parts[i + 1], &step)) {
      return step;
    }
  }
  return -1;
}

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
  std::string csv = absl::StrCat(
      "name,step,kind,state,value,standard_error,top_eigenvalues,iterations,"
      "probes,loss,num_samples,num_parameters,hvps,device,compute_seconds,"
      "error_message,operator,",
      absl::StrJoin(KindColumns(), ","), "\n");
  for (const v1::Measurement& m : measurements) {
    const std::vector<ResultSummary> summaries = Summaries(m);
    std::map<std::string, std::string> columns;
    for (const ResultSummary& summary : summaries) {
      columns.insert(summary.columns.begin(), summary.columns.end());
    }
    // A plan has no one headline: its numbers are in the kinds' columns.
    std::string value, standard_error;
    if (summaries.size() == 1 && !m.has_plan()) {
      value = Number(summaries[0].value);
      if (summaries[0].standard_error) {
        standard_error = Number(*summaries[0].standard_error);
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
        has_diagnostics ? Number(d.loss()) : "",
        has_diagnostics ? absl::StrCat(d.num_samples()) : "",
        has_diagnostics ? absl::StrCat(d.num_parameters()) : "",
        has_diagnostics ? absl::StrCat(d.hvps()) : "",
        d.device(),
        has_diagnostics ? Number(d.compute_duration().seconds() +
                                 d.compute_duration().nanos() * 1e-9)
                        : "",
        m.error_message(),
        has_diagnostics
            ? (d.operator_() == v1::OPERATOR_GGN ? "ggn" : "hessian")
            : "",
    };
    for (const std::string& column : KindColumns()) {
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
        has_diagnostics ? Short(m.diagnostics().loss()) : "",
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
        row[3] = Short(summaries[0].value);
        row[4] = Detail(summaries[0]);
      }
      rows.push_back(std::move(row));
      continue;
    }
    // A plan: its own row, then one indented row per result.
    rows.push_back(row);
    for (const ResultSummary& summary : summaries) {
      rows.push_back({"", absl::StrCat("  ", summary.kind), "",
                      Short(summary.value), Detail(summary), "", "", "", ""});
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

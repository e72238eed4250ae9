#include "client/measurement_format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>

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
  std::string csv =
      "name,step,kind,state,value,standard_error,top_eigenvalues,iterations,"
      "probes,loss,num_samples,num_parameters,hvps,device,compute_seconds,"
      "error_message\n";
  for (const v1::Measurement& m : measurements) {
    std::string value, standard_error, top, iterations, probes;
    if (m.has_sharpness()) {
      value = Number(m.sharpness().sharpness());
      top = TopEigenvalues(m.sharpness(), ";", /*full=*/true);
      iterations = absl::StrCat(m.sharpness().iterations());
    } else if (m.has_hessian_trace()) {
      value = Number(m.hessian_trace().trace());
      standard_error = Number(m.hessian_trace().standard_error());
      probes = absl::StrCat(m.hessian_trace().probes());
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
        top,
        iterations,
        probes,
        has_diagnostics ? Number(d.loss()) : "",
        has_diagnostics ? absl::StrCat(d.num_samples()) : "",
        has_diagnostics ? absl::StrCat(d.num_parameters()) : "",
        has_diagnostics ? absl::StrCat(d.hvps()) : "",
        d.device(),
        has_diagnostics ? Number(d.compute_duration().seconds() +
                                 d.compute_duration().nanos() * 1e-9)
                        : "",
        m.error_message(),
    };
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
    std::string value, detail;
    if (m.state() == v1::Measurement::FAILED ||
        m.state() == v1::Measurement::CANCELLED) {
      detail = m.error_message();
    } else if (m.has_sharpness()) {
      value = Short(m.sharpness().sharpness());
      detail = absl::StrCat("top ", TopEigenvalues(m.sharpness(), " ", false));
    } else if (m.has_hessian_trace()) {
      value = Short(m.hessian_trace().trace());
      detail = absl::StrCat("± ", Short(m.hessian_trace().standard_error()),
                            " (", m.hessian_trace().probes(), " probes)");
    }
    const bool has_diagnostics = m.has_diagnostics();
    rows.push_back(
        {absl::StrCat(StepFromName(m.name())), KindName(m.spec()),
         v1::Measurement::State_Name(m.state()), value, detail,
         has_diagnostics ? Short(m.diagnostics().loss()) : "",
         m.diagnostics().device(),
         has_diagnostics ? Seconds(m.diagnostics().compute_duration()) : "",
         MeasurementId(m.name())});
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
  if (m.has_sharpness()) {
    return absl::StrCat("sharpness ", Short(m.sharpness().sharpness()),
                        " (top ", TopEigenvalues(m.sharpness(), " ", false),
                        ")");
  }
  if (m.has_hessian_trace()) {
    return absl::StrCat("trace ", Short(m.hessian_trace().trace()), " ± ",
                        Short(m.hessian_trace().standard_error()));
  }
  return absl::StrCat(KindName(m.spec()), " ",
                      v1::Measurement::State_Name(m.state()));
}

}  // namespace curvd::client

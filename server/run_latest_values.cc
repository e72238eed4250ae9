#include "server/run_latest_values.h"

#include <utility>
#include <vector>

#include "common/resource_names.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace curvd::server {
namespace {

using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;

struct Quantity {
  std::string kind;
  std::string name;
  double value;
};

// The set double fields of `result`, under `kind`.
void AppendDoubles(const Message& result, const std::string& kind,
                   std::vector<Quantity>* out) {
  const auto* descriptor = result.GetDescriptor();
  const auto* reflection = result.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated() ||
        field->cpp_type() != FieldDescriptor::CPPTYPE_DOUBLE) {
      continue;
    }
    if (field->has_presence() && !reflection->HasField(result, field)) continue;
    out->push_back({kind, field->name(), reflection->GetDouble(result, field)});
  }
}

// Walks the result oneof by descriptor, as the metrics' kinds do: no per-kind
// code. A plan's members are results of their own kinds.
std::vector<Quantity> QuantitiesOf(const curvd::v1::Measurement& m) {
  std::vector<Quantity> out;
  const auto* reflection = m.GetReflection();
  const FieldDescriptor* field = reflection->GetOneofFieldDescriptor(
      m, m.GetDescriptor()->FindOneofByName("result"));
  if (field == nullptr) return out;
  const Message& result = reflection->GetMessage(m, field);
  if (field->message_type() != curvd::v1::MeasurementPlanResult::descriptor()) {
    AppendDoubles(result, field->name(), &out);
    return out;
  }
  const auto* plan_reflection = result.GetReflection();
  std::vector<const FieldDescriptor*> members;
  plan_reflection->ListFields(result, &members);
  for (const FieldDescriptor* member : members) {
    if (member->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
        member->is_repeated()) {
      continue;
    }
    AppendDoubles(plan_reflection->GetMessage(result, member), member->name(),
                  &out);
  }
  return out;
}

}  // namespace

RunLatestValues::RunLatestValues(prometheus::Registry& registry,
                                 const RunLatestLimits& limits)
    : limits_(limits),
      values_(prometheus::BuildGauge()
                  .Name("curvd_run_latest_value")
                  .Help("Latest results of active runs: each double of the "
                        "newest measured checkpoint's result, by run, kind and "
                        "quantity (bounded by --metrics_max_runs and "
                        "--metrics_run_idle_seconds).")
                  .Register(registry)),
      steps_(prometheus::BuildGauge()
                 .Name("curvd_run_latest_step")
                 .Help("The checkpoint step of curvd_run_latest_value's "
                       "values, by run and kind.")
                 .Register(registry)) {}

RunLatestValues::~RunLatestValues() = default;

void RunLatestValues::Remove(RunSeries& run) {
  for (auto& [kind, series] : run.kinds) {
    for (auto& [quantity, gauge] : series.values) values_.Remove(gauge);
    steps_.Remove(series.step_gauge);
  }
}

RunLatestValues::RunSeries& RunLatestValues::Entry(const std::string& run_id) {
  if (auto it = runs_.find(run_id); it != runs_.end()) return it->second;
  if (runs_.size() >= limits_.max_runs) {
    auto oldest = runs_.begin();
    for (auto it = runs_.begin(); it != runs_.end(); ++it) {
      if (it->second.updated < oldest->second.updated) oldest = it;
    }
    Remove(oldest->second);
    runs_.erase(oldest);
  }
  return runs_[run_id];
}

void RunLatestValues::Record(const curvd::v1::Measurement& measurement,
                             absl::Time now) {
  if (measurement.state() != curvd::v1::Measurement::SUCCEEDED ||
      limits_.max_runs == 0) {
    return;
  }
  absl::StatusOr<common::MeasurementName> name =
      common::ParseMeasurementName(measurement.name());
  if (!name.ok()) return;
  std::vector<Quantity> quantities = QuantitiesOf(measurement);
  if (quantities.empty()) return;
  absl::MutexLock lock(&mu_);
  RunSeries& run = Entry(name->run_id);
  run.updated = now;
  // Kinds this result replaces, with the quantities it brings; the rest of an
  // older result of such a kind (an optional field unset now) is removed.
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, double>>
      fresh;
  for (const Quantity& q : quantities) {
    auto existing = run.kinds.find(q.kind);
    if (existing != run.kinds.end() && existing->second.step > name->step) {
      continue;
    }
    fresh[q.kind][q.name] = q.value;
  }
  for (auto& [kind, values] : fresh) {
    auto [it, inserted] = run.kinds.try_emplace(kind);
    KindSeries& series = it->second;
    if (inserted) {
      series.step_gauge = &steps_.Add({{"run", name->run_id}, {"kind", kind}});
    }
    series.step = name->step;
    series.step_gauge->Set(static_cast<double>(name->step));
    for (auto v = series.values.begin(); v != series.values.end();) {
      if (values.contains(v->first)) {
        ++v;
        continue;
      }
      values_.Remove(v->second);
      series.values.erase(v++);
    }
    for (const auto& [quantity, value] : values) {
      prometheus::Gauge*& gauge = series.values[quantity];
      if (gauge == nullptr) {
        gauge = &values_.Add(
            {{"run", name->run_id}, {"kind", kind}, {"quantity", quantity}});
      }
      gauge->Set(value);
    }
  }
}

void RunLatestValues::DropIdle(absl::Time now) {
  absl::MutexLock lock(&mu_);
  for (auto it = runs_.begin(); it != runs_.end();) {
    if (now - it->second.updated <= limits_.idle) {
      ++it;
      continue;
    }
    Remove(it->second);
    runs_.erase(it++);
  }
}

size_t RunLatestValues::runs() const {
  absl::MutexLock lock(&mu_);
  return runs_.size();
}

}  // namespace curvd::server

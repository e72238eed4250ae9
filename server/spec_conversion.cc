#include "server/spec_conversion.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr char kPlanField[] = "plan";

v1::Precision ToProto(core::Precision p) {
  switch (p) {
    case core::Precision::kFloat64:
      return v1::PRECISION_FLOAT64;
    case core::Precision::kTf32:
      return v1::PRECISION_TF32;
    case core::Precision::kFloat32:
      break;
  }
  return v1::PRECISION_FLOAT32;
}

core::Precision ToCore(v1::Precision p) {
  switch (p) {
    case v1::PRECISION_FLOAT64:
      return core::Precision::kFloat64;
    case v1::PRECISION_TF32:
      return core::Precision::kTf32;
    default:
      return core::Precision::kFloat32;
  }
}

v1::LossFunction ToProto(core::LossFunction loss) {
  return loss == core::LossFunction::kMse ? v1::LOSS_FUNCTION_MSE
                                          : v1::LOSS_FUNCTION_CROSS_ENTROPY;
}

v1::Operator ToProto(core::CurvatureOperator op) {
  return op == core::CurvatureOperator::kGgn ? v1::OPERATOR_GGN
                                             : v1::OPERATOR_HESSIAN;
}

// The field named `name` of `message` (a kind's field in MeasurementSpec,
// MeasurementPlanSpec, Measurement or MeasurementPlanResult).
const FieldDescriptor* Field(const Message& message, const std::string& name) {
  return message.GetDescriptor()->FindFieldByName(name);
}

const Message& SubMessage(const Message& message, const std::string& name) {
  return message.GetReflection()->GetMessage(message, Field(message, name));
}

Message* MutableSubMessage(Message* message, const std::string& name) {
  return message->GetReflection()->MutableMessage(message,
                                                  Field(*message, name));
}

// The row of the kind field `spec` sets, or nullptr (unset, or a plan).
const KindRow* SingleKind(const v1::MeasurementSpec& spec) {
  return FindKindRow(KindName(spec));
}

std::string MustSetAKind() {
  std::vector<std::string> names;
  for (const KindRow& row : KindTable()) names.push_back(row.name);
  names.push_back(kPlanField);
  return absl::StrCat("spec must set a kind: ", absl::StrJoin(names, ", "));
}

}  // namespace

absl::StatusOr<core::MeasurementRequest> ToCoreRequest(
    const v1::MeasurementSpec& spec, const RequestLimits& limits) {
  core::MeasurementRequest request;
  request.objective.loss = spec.loss() == v1::LOSS_FUNCTION_MSE
                               ? core::LossFunction::kMse
                               : core::LossFunction::kCrossEntropy;
  request.objective.micro_batch_size = spec.micro_batch_size();
  request.objective.precision = ToCore(spec.precision());
  request.objective.train_mode = spec.train_mode();
  request.objective.forward_seed = spec.forward_seed();
  request.op = spec.operator_() == v1::OPERATOR_GGN
                   ? core::CurvatureOperator::kGgn
                   : core::CurvatureOperator::kHessian;
  request.block.names.assign(spec.block().names().begin(),
                             spec.block().names().end());
  request.block.prefixes.assign(spec.block().prefixes().begin(),
                                spec.block().prefixes().end());
  if (spec.has_plan()) {
    const v1::MeasurementPlanSpec& plan = spec.plan();
    for (const KindRow& row : KindTable()) {
      const FieldDescriptor* field = Field(plan, row.name);
      if (!plan.GetReflection()->HasField(plan, field)) continue;
      CURVD_ASSIGN_OR_RETURN(
          core::Method method,
          row.read_spec(plan.GetReflection()->GetMessage(plan, field), limits));
      request.methods.push_back(std::move(method));
    }
    CURVD_RETURN_IF_ERROR(core::ValidateRequest(request, kPlanField));
    return request;
  }
  const KindRow* row = SingleKind(spec);
  if (row == nullptr) return absl::InvalidArgumentError(MustSetAKind());
  CURVD_ASSIGN_OR_RETURN(core::Method method,
                         row->read_spec(SubMessage(spec, row->name), limits));
  request.methods.push_back(std::move(method));
  CURVD_RETURN_IF_ERROR(core::ValidateRequest(request));
  return request;
}

v1::MeasurementSpec EffectiveSpec(const v1::MeasurementSpec& spec,
                                  const core::MeasurementRequest& request) {
  v1::MeasurementSpec effective;
  effective.set_shard_uri(spec.shard_uri());
  effective.set_device(spec.device());
  effective.set_device_split(spec.device_split());
  effective.set_loss(ToProto(request.objective.loss));
  effective.set_micro_batch_size(request.objective.micro_batch_size);
  effective.set_precision(ToProto(request.objective.precision));
  effective.set_train_mode(request.objective.train_mode);
  effective.set_forward_seed(request.objective.forward_seed);
  effective.set_operator_(ToProto(request.op));
  *effective.mutable_block() = spec.block();
  Message* holder = spec.has_plan()
                        ? static_cast<Message*>(effective.mutable_plan())
                        : static_cast<Message*>(&effective);
  for (const core::Method& method : request.methods) {
    const KindRow* row = FindKindRow(core::MethodName(method));
    row->write_spec(method, MutableSubMessage(holder, row->name));
  }
  return effective;
}

void ApplyResult(const core::MeasurementResult& result,
                 v1::Measurement* measurement) {
  v1::Diagnostics* d = measurement->mutable_diagnostics();
  d->set_hvps(result.hvps);
  d->set_loss(result.loss);
  d->set_num_samples(result.num_samples);
  d->set_num_parameters(result.num_parameters);
  *d->mutable_compute_duration() =
      google::protobuf::util::TimeUtil::NanosecondsToDuration(
          static_cast<int64_t>(std::llround(result.compute_seconds * 1e9)));
  d->set_device(result.device);
  d->set_precision(ToProto(result.precision));
  d->set_train_mode(result.train_mode);
  d->set_micro_batch_size(result.micro_batch_size);
  d->set_operator_(ToProto(result.op));
  d->mutable_block_parameters()->Assign(result.block_parameters.begin(),
                                        result.block_parameters.end());
  d->mutable_shared()->Assign(result.shared.begin(), result.shared.end());
  d->set_graphs_retained(result.graphs_retained);
  d->set_hvp_graph(result.hvp_graph);
  d->set_split(result.split);
  d->set_forward_seed(result.forward_seed);
  d->set_forward_randomness_fixed(
      true);  // the engine always seeds (objective.h)
  if (result.operator_check_difference.has_value()) {
    d->set_operator_check_difference(*result.operator_check_difference);
  }
  const v1::MeasurementSpec& spec = measurement->spec();
  for (const core::Method& method : result.methods) {
    const KindRow* row = FindKindRow(core::MethodName(method));
    // The options the method ran with, which state what the run resolved
    // (llc's n_beta of its convention); the same as before for the others.
    if (measurement->has_effective_spec()) {
      v1::MeasurementSpec* effective = measurement->mutable_effective_spec();
      Message* holder = effective->has_plan()
                            ? static_cast<Message*>(effective->mutable_plan())
                            : static_cast<Message*>(effective);
      if (holder->GetReflection()->HasField(*holder,
                                            Field(*holder, row->name))) {
        Message* options = MutableSubMessage(holder, row->name);
        options->Clear();
        row->write_spec(method, options);
      }
    }
    if (spec.has_plan()) {
      if (!spec.plan().GetReflection()->HasField(
              spec.plan(), Field(spec.plan(), row->name))) {
        continue;
      }
      row->write_result(
          method, MutableSubMessage(measurement->mutable_plan(), row->name));
    } else if (row->name == KindName(spec)) {
      row->write_result(method, MutableSubMessage(measurement, row->name));
    }
  }
}

}  // namespace curvd::server

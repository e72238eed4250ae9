#include "server/spec_conversion.h"

#include <cmath>

#include "core/status_macros.h"
#include "google/protobuf/util/time_util.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;

constexpr int kDefaultTopK = 1;
constexpr int kDefaultMaxIterations = 100;
constexpr double kDefaultRelativeTolerance = 1e-6;
constexpr int kDefaultMinProbes = 10;
constexpr int kDefaultMaxProbes = 200;
constexpr double kDefaultTargetRelativeError = 0.01;

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

void ToProto(const core::Eigenpair& in, v1::Eigenpair* out) {
  out->set_value(in.value);
  out->set_residual_norm(in.residual_norm);
  out->set_converged(in.converged);
}

}  // namespace

absl::StatusOr<core::MeasurementRequest> ToCoreRequest(
    const v1::MeasurementSpec& spec) {
  core::MeasurementRequest request;
  switch (spec.loss()) {
    case v1::LOSS_FUNCTION_MSE:
      request.objective.loss = core::LossFunction::kMse;
      break;
    default:
      request.objective.loss = core::LossFunction::kCrossEntropy;
  }
  request.objective.micro_batch_size = spec.micro_batch_size();
  request.objective.precision = ToCore(spec.precision());
  request.objective.train_mode = spec.train_mode();
  switch (spec.kind_case()) {
    case v1::MeasurementSpec::kSharpness: {
      const v1::SharpnessSpec& s = spec.sharpness();
      request.kind = core::MeasurementKind::kSharpness;
      request.lanczos.top_k = s.has_top_k() ? s.top_k() : kDefaultTopK;
      request.lanczos.bottom_k = s.bottom_k();
      request.lanczos.max_iterations =
          s.max_iterations() != 0 ? s.max_iterations() : kDefaultMaxIterations;
      request.lanczos.relative_tolerance = s.relative_tolerance() != 0
                                               ? s.relative_tolerance()
                                               : kDefaultRelativeTolerance;
      request.lanczos.seed = s.seed();
      break;
    }
    case v1::MeasurementSpec::kHessianTrace: {
      const v1::HessianTraceSpec& t = spec.hessian_trace();
      request.kind = core::MeasurementKind::kHessianTrace;
      request.trace.distribution =
          t.distribution() == v1::PROBE_DISTRIBUTION_GAUSSIAN
              ? core::ProbeDistribution::kGaussian
              : core::ProbeDistribution::kRademacher;
      request.trace.min_probes =
          t.has_min_probes() ? t.min_probes() : kDefaultMinProbes;
      request.trace.max_probes =
          t.has_max_probes() ? t.max_probes() : kDefaultMaxProbes;
      request.trace.target_relative_error = t.has_target_relative_error()
                                                ? t.target_relative_error()
                                                : kDefaultTargetRelativeError;
      request.trace.seed = t.seed();
      break;
    }
    case v1::MeasurementSpec::KIND_NOT_SET:
      return absl::InvalidArgumentError(
          "spec must set a kind: sharpness or hessian_trace");
  }
  CURVD_RETURN_IF_ERROR(core::ValidateRequest(request));
  return request;
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
  switch (result.kind) {
    case core::MeasurementKind::kSharpness: {
      v1::SharpnessResult* s = measurement->mutable_sharpness();
      for (const core::Eigenpair& e : result.sharpness.top)
        ToProto(e, s->add_top());
      for (const core::Eigenpair& e : result.sharpness.bottom)
        ToProto(e, s->add_bottom());
      if (!result.sharpness.top.empty())
        s->set_sharpness(result.sharpness.top[0].value);
      s->set_iterations(result.sharpness.iterations);
      s->set_converged(result.sharpness.converged);
      break;
    }
    case core::MeasurementKind::kHessianTrace: {
      v1::HessianTraceResult* t = measurement->mutable_hessian_trace();
      t->set_trace(result.trace.trace);
      t->set_standard_error(result.trace.standard_error);
      t->set_probes(result.trace.probes);
      t->set_stop_reason(result.trace.stop_reason);
      break;
    }
  }
}

std::string KindName(const v1::MeasurementSpec& spec) {
  switch (spec.kind_case()) {
    case v1::MeasurementSpec::kSharpness:
      return "sharpness";
    case v1::MeasurementSpec::kHessianTrace:
      return "hessian_trace";
    case v1::MeasurementSpec::KIND_NOT_SET:
      break;
  }
  return "unspecified";
}

}  // namespace curvd::server

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
constexpr int kDefaultSlqRuns = 10;
constexpr int kDefaultSlqSteps = 100;
constexpr int kDefaultGridPoints = 1000;
constexpr double kDefaultSigmaFraction = 0.01;
constexpr double kDefaultLogThreshold = 1e-6;
constexpr int kDefaultHutchppHvps = 300;
constexpr int kDefaultMinResidualProbes = 10;
constexpr int kDefaultPowerIterations = 1000;
constexpr int kDefaultSlicePoints = 41;
constexpr double kDefaultSliceHalfWidth = 1;

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

core::ProbeDistribution ToCore(v1::ProbeDistribution d) {
  return d == v1::PROBE_DISTRIBUTION_GAUSSIAN
             ? core::ProbeDistribution::kGaussian
             : core::ProbeDistribution::kRademacher;
}

v1::Operator ToProto(core::CurvatureOperator op) {
  return op == core::CurvatureOperator::kGgn ? v1::OPERATOR_GGN
                                             : v1::OPERATOR_HESSIAN;
}

// ---- Options, one function per spec message ----

core::LanczosOptions ToCore(const v1::SharpnessSpec& s) {
  core::LanczosOptions o;
  o.top_k = s.has_top_k() ? s.top_k() : kDefaultTopK;
  o.bottom_k = s.bottom_k();
  o.max_iterations =
      s.max_iterations() != 0 ? s.max_iterations() : kDefaultMaxIterations;
  o.relative_tolerance = s.relative_tolerance() != 0
                             ? s.relative_tolerance()
                             : kDefaultRelativeTolerance;
  o.seed = s.seed();
  return o;
}

core::TraceOptions ToCore(const v1::HessianTraceSpec& t) {
  core::TraceOptions o;
  o.distribution = ToCore(t.distribution());
  o.min_probes = t.has_min_probes() ? t.min_probes() : kDefaultMinProbes;
  o.max_probes = t.has_max_probes() ? t.max_probes() : kDefaultMaxProbes;
  o.target_relative_error = t.has_target_relative_error()
                                ? t.target_relative_error()
                                : kDefaultTargetRelativeError;
  o.seed = t.seed();
  return o;
}

core::SlqOptions ToCore(const v1::SpectralDensitySpec& d) {
  core::SlqOptions o;
  o.runs = d.has_runs() ? d.runs() : kDefaultSlqRuns;
  o.steps = d.has_steps() ? d.steps() : kDefaultSlqSteps;
  o.distribution = ToCore(d.distribution());
  o.seed = d.seed();
  o.grid_points = d.has_grid_points() ? d.grid_points() : kDefaultGridPoints;
  o.grid_min = d.grid_min();
  o.grid_max = d.grid_max();
  o.sigma = d.sigma();
  o.sigma_fraction =
      d.has_sigma_fraction() ? d.sigma_fraction() : kDefaultSigmaFraction;
  o.log_threshold =
      d.has_log_threshold() ? d.log_threshold() : kDefaultLogThreshold;
  return o;
}

core::HutchppOptions ToCore(const v1::HutchppSpec& h) {
  core::HutchppOptions o;
  o.distribution = ToCore(h.distribution());
  o.max_hvps = h.has_max_hvps() ? h.max_hvps() : kDefaultHutchppHvps;
  o.sketch_size = h.sketch_size();
  o.target_relative_error = h.has_target_relative_error()
                                ? h.target_relative_error()
                                : kDefaultTargetRelativeError;
  o.min_residual_probes = h.has_min_residual_probes()
                              ? h.min_residual_probes()
                              : kDefaultMinResidualProbes;
  o.seed = h.seed();
  return o;
}

core::LossExpansionOptions ToCore(const v1::LossExpansionSpec& e) {
  core::LossExpansionOptions o;
  o.rho = e.rho();
  o.h0 = e.h0();
  o.ess = e.ess();
  o.num_steps = e.num_steps();
  o.trace_cubed = ToCore(e.trace_h3());
  return o;
}

core::ExactHessianOptions ToCore(const v1::ExactHessianSpec& x,
                                 const RequestLimits& limits) {
  core::ExactHessianOptions o;
  o.max_parameters = limits.exact_hessian_max_parameters;
  o.max_matrix_parameters = limits.exact_hessian_max_matrix_parameters;
  o.return_matrix = x.return_matrix();
  return o;
}

core::PowerIterationOptions ToCore(const v1::PowerIterationSpec& p) {
  core::PowerIterationOptions o;
  o.top_k = p.has_top_k() ? p.top_k() : kDefaultTopK;
  o.max_iterations =
      p.has_max_iterations() ? p.max_iterations() : kDefaultPowerIterations;
  o.relative_tolerance = p.has_relative_tolerance() ? p.relative_tolerance()
                                                    : kDefaultRelativeTolerance;
  o.seed = p.seed();
  return o;
}

core::LossSliceOptions ToCore(const v1::LossSliceSpec& s) {
  core::LossSliceOptions o;
  o.direction = s.direction() == v1::LossSliceSpec::RANDOM
                    ? core::SliceDirection::kRandom
                    : core::SliceDirection::kTopEigenvector;
  o.points = s.has_points() ? s.points() : kDefaultSlicePoints;
  const bool default_interval = s.t_min() == 0 && s.t_max() == 0;
  o.t_min = default_interval ? -kDefaultSliceHalfWidth : s.t_min();
  o.t_max = default_interval ? kDefaultSliceHalfWidth : s.t_max();
  o.seed = s.seed();
  o.lanczos = ToCore(s.lanczos());
  // Only the top eigenvector is wanted, whatever the spec's top_k says.
  o.lanczos.top_k = 1;
  o.lanczos.bottom_k = 0;
  return o;
}

// Copies the options of `kind` from `holder`, a MeasurementSpec or a
// MeasurementPlanSpec (their kind fields share names and types), into
// `request`.
template <typename Holder>
void ReadOptions(core::MeasurementKind kind, const Holder& holder,
                 const RequestLimits& limits,
                 core::MeasurementRequest* request) {
  switch (kind) {
    case core::MeasurementKind::kSharpness:
      request->lanczos = ToCore(holder.sharpness());
      break;
    case core::MeasurementKind::kHessianTrace:
      request->trace = ToCore(holder.hessian_trace());
      break;
    case core::MeasurementKind::kSpectralDensity:
      request->density = ToCore(holder.spectral_density());
      break;
    case core::MeasurementKind::kHutchpp:
      request->hutchpp = ToCore(holder.hutchpp());
      break;
    case core::MeasurementKind::kTraceCubed:
      request->trace_cubed = ToCore(holder.trace_h3());
      break;
    case core::MeasurementKind::kLossExpansion:
      request->loss_expansion = ToCore(holder.loss_expansion());
      break;
    case core::MeasurementKind::kExactHessian:
      request->exact_hessian = ToCore(holder.exact_hessian(), limits);
      break;
    case core::MeasurementKind::kPowerIteration:
      request->power_iteration = ToCore(holder.power_iteration());
      break;
    case core::MeasurementKind::kLossSlice:
      request->loss_slice = ToCore(holder.loss_slice());
      break;
    case core::MeasurementKind::kPlan:
      break;
  }
}

// The kind of a single-kind spec; kPlan for a plan; NotFound when unset.
absl::StatusOr<core::MeasurementKind> SpecKind(
    const v1::MeasurementSpec& spec) {
  switch (spec.kind_case()) {
    case v1::MeasurementSpec::kSharpness:
      return core::MeasurementKind::kSharpness;
    case v1::MeasurementSpec::kHessianTrace:
      return core::MeasurementKind::kHessianTrace;
    case v1::MeasurementSpec::kSpectralDensity:
      return core::MeasurementKind::kSpectralDensity;
    case v1::MeasurementSpec::kHutchpp:
      return core::MeasurementKind::kHutchpp;
    case v1::MeasurementSpec::kTraceH3:
      return core::MeasurementKind::kTraceCubed;
    case v1::MeasurementSpec::kLossExpansion:
      return core::MeasurementKind::kLossExpansion;
    case v1::MeasurementSpec::kExactHessian:
      return core::MeasurementKind::kExactHessian;
    case v1::MeasurementSpec::kPowerIteration:
      return core::MeasurementKind::kPowerIteration;
    case v1::MeasurementSpec::kLossSlice:
      return core::MeasurementKind::kLossSlice;
    case v1::MeasurementSpec::kPlan:
      return core::MeasurementKind::kPlan;
    case v1::MeasurementSpec::KIND_NOT_SET:
      break;
  }
  return absl::NotFoundError("no kind");
}

// ---- Results, one function per result message ----

void ToProto(const core::Eigenpair& in, v1::Eigenpair* out) {
  out->set_value(in.value);
  out->set_residual_norm(in.residual_norm);
  out->set_converged(in.converged);
}

void ToProto(const core::SharpnessResult& in, v1::SharpnessResult* out) {
  for (const core::Eigenpair& e : in.top) ToProto(e, out->add_top());
  for (const core::Eigenpair& e : in.bottom) ToProto(e, out->add_bottom());
  if (!in.top.empty()) out->set_sharpness(in.top[0].value);
  out->set_iterations(in.iterations);
  out->set_converged(in.converged);
}

void ToProto(const core::TraceResult& in, v1::HessianTraceResult* out) {
  out->set_trace(in.trace);
  out->set_standard_error(in.standard_error);
  out->set_probes(in.probes);
  out->set_stop_reason(in.stop_reason);
}

void ToProto(const core::SlqResult& in, v1::SpectralDensityResult* out) {
  for (const core::SlqRun& run : in.runs) {
    v1::SlqRun* r = out->add_runs();
    r->mutable_nodes()->Add(run.nodes.begin(), run.nodes.end());
    r->mutable_weights()->Add(run.weights.begin(), run.weights.end());
    r->set_steps(run.steps);
    r->set_invariant(run.invariant);
  }
  out->mutable_grid()->Add(in.density.grid.begin(), in.density.grid.end());
  out->mutable_density()->Add(in.density.density.begin(),
                              in.density.density.end());
  out->set_sigma(in.density.sigma);
  out->set_sigma_rule(in.density.sigma_rule);
  for (const core::SpectralEstimate& e : in.estimates) {
    v1::SpectralEstimate* s = out->add_estimates();
    s->set_function(e.function);
    s->set_mean(e.mean);
    s->set_trace(e.trace);
    s->set_standard_error(e.standard_error);
  }
  out->set_log_threshold(in.log_threshold);
}

void ToProto(const core::HutchppResult& in, v1::HutchppResult* out) {
  out->set_trace(in.trace);
  out->set_standard_error(in.standard_error);
  out->set_low_rank_trace(in.low_rank_trace);
  out->set_residual_trace(in.residual_trace);
  out->set_sketch_size(in.sketch_size);
  out->set_residual_probes(in.residual_probes);
  out->set_stop_reason(in.stop_reason);
  out->set_frobenius_norm_squared(in.frobenius_norm_squared);
  out->set_sketch_frobenius_fraction(in.sketch_frobenius_fraction);
  out->set_hutchinson_standard_error_same_hvps(
      in.hutchinson_standard_error_same_hvps);
}

void ToProto(const core::LossExpansionResult& in,
             v1::LossExpansionResult* out) {
  out->set_gradient_norm_squared(in.gradient_norm_squared);
  out->set_gradient_curvature(in.gradient_curvature);
  ToProto(in.trace_cubed, out->mutable_trace_h3());
  out->set_sigma_squared(in.sigma_squared);
  out->set_first_order_term(in.first_order_term);
  out->set_second_order_term(in.second_order_term);
  out->set_noise_term(in.noise_term);
  out->set_noise_term_standard_error(in.noise_term_standard_error);
  out->set_total(in.total);
  out->set_total_standard_error(in.total_standard_error);
}

void ToProto(const core::ExactHessianResult& in, v1::ExactHessianResult* out) {
  out->mutable_eigenvalues()->Add(in.eigenvalues.begin(), in.eigenvalues.end());
  out->set_rank(in.rank);
  out->set_rank_tolerance(in.rank_tolerance);
  out->set_rank_rule(in.rank_rule);
  out->set_positive(in.positive);
  out->set_negative(in.negative);
  out->set_condition_number(in.condition_number);
  out->set_log_determinant_positive(in.log_determinant_positive);
  out->set_asymmetry(in.asymmetry);
  out->mutable_matrix()->Add(in.matrix.begin(), in.matrix.end());
}

void ToProto(const core::PowerIterationResult& in,
             v1::PowerIterationResult* out) {
  for (const core::PowerEigenpair& pair : in.pairs) {
    v1::PowerEigenpair* p = out->add_pairs();
    p->set_value(pair.value);
    p->set_residual_norm(pair.residual_norm);
    p->set_iterations(pair.iterations);
    p->set_converged(pair.converged);
  }
  out->set_converged(in.converged);
}

void ToProto(const core::LossSliceResult& in, v1::LossSliceResult* out) {
  out->mutable_t()->Add(in.t.begin(), in.t.end());
  out->mutable_loss()->Add(in.loss.begin(), in.loss.end());
  out->set_direction(in.direction);
  out->set_eigenvalue(in.eigenvalue);
  out->set_residual_norm(in.residual_norm);
  out->set_direction_curvature(in.direction_curvature);
}

// Writes the result of `kind` into `out`, a Measurement or a
// MeasurementPlanResult (their result fields share names and types).
template <typename Out>
void WriteResult(core::MeasurementKind kind,
                 const core::MeasurementResult& result, Out* out) {
  switch (kind) {
    case core::MeasurementKind::kSharpness:
      ToProto(result.sharpness, out->mutable_sharpness());
      break;
    case core::MeasurementKind::kHessianTrace:
      ToProto(result.trace, out->mutable_hessian_trace());
      break;
    case core::MeasurementKind::kSpectralDensity:
      ToProto(result.density, out->mutable_spectral_density());
      break;
    case core::MeasurementKind::kHutchpp:
      ToProto(result.hutchpp, out->mutable_hutchpp());
      break;
    case core::MeasurementKind::kTraceCubed:
      ToProto(result.trace_cubed, out->mutable_trace_h3());
      break;
    case core::MeasurementKind::kLossExpansion:
      ToProto(result.loss_expansion, out->mutable_loss_expansion());
      break;
    case core::MeasurementKind::kExactHessian:
      ToProto(result.exact_hessian, out->mutable_exact_hessian());
      break;
    case core::MeasurementKind::kPowerIteration:
      ToProto(result.power_iteration, out->mutable_power_iteration());
      break;
    case core::MeasurementKind::kLossSlice:
      ToProto(result.loss_slice, out->mutable_loss_slice());
      break;
    case core::MeasurementKind::kPlan:
      break;
  }
}

}  // namespace

std::vector<core::MeasurementKind> PlanKinds(
    const v1::MeasurementPlanSpec& plan) {
  std::vector<core::MeasurementKind> kinds;
  if (plan.has_sharpness()) kinds.push_back(core::MeasurementKind::kSharpness);
  if (plan.has_hessian_trace())
    kinds.push_back(core::MeasurementKind::kHessianTrace);
  if (plan.has_spectral_density())
    kinds.push_back(core::MeasurementKind::kSpectralDensity);
  if (plan.has_hutchpp()) kinds.push_back(core::MeasurementKind::kHutchpp);
  if (plan.has_trace_h3()) kinds.push_back(core::MeasurementKind::kTraceCubed);
  if (plan.has_loss_expansion())
    kinds.push_back(core::MeasurementKind::kLossExpansion);
  if (plan.has_exact_hessian())
    kinds.push_back(core::MeasurementKind::kExactHessian);
  if (plan.has_power_iteration())
    kinds.push_back(core::MeasurementKind::kPowerIteration);
  if (plan.has_loss_slice()) kinds.push_back(core::MeasurementKind::kLossSlice);
  return kinds;
}

absl::StatusOr<core::MeasurementRequest> ToCoreRequest(
    const v1::MeasurementSpec& spec, const RequestLimits& limits) {
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
  request.op = spec.operator_() == v1::OPERATOR_GGN
                   ? core::CurvatureOperator::kGgn
                   : core::CurvatureOperator::kHessian;
  request.block.names.assign(spec.block().names().begin(),
                             spec.block().names().end());
  request.block.prefixes.assign(spec.block().prefixes().begin(),
                                spec.block().prefixes().end());
  absl::StatusOr<core::MeasurementKind> kind = SpecKind(spec);
  if (!kind.ok()) {
    return absl::InvalidArgumentError(
        "spec must set a kind: sharpness, hessian_trace, spectral_density, "
        "hutchpp, trace_h3, loss_expansion, exact_hessian, power_iteration, "
        "loss_slice or plan");
  }
  request.kind = *kind;
  if (request.kind == core::MeasurementKind::kPlan) {
    request.plan = PlanKinds(spec.plan());
    for (core::MeasurementKind planned : request.plan) {
      ReadOptions(planned, spec.plan(), limits, &request);
    }
  } else {
    ReadOptions(request.kind, spec, limits, &request);
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
  d->set_operator_(ToProto(result.op));
  d->mutable_block_parameters()->Assign(result.block_parameters.begin(),
                                        result.block_parameters.end());
  d->mutable_shared()->Assign(result.shared.begin(), result.shared.end());
  d->set_graphs_retained(result.graphs_retained);
  if (result.kind != core::MeasurementKind::kPlan) {
    WriteResult(result.kind, result, measurement);
    return;
  }
  v1::MeasurementPlanResult* plan = measurement->mutable_plan();
  for (core::MeasurementKind kind : PlanKinds(measurement->spec().plan())) {
    WriteResult(kind, result, plan);
  }
}

std::string KindName(const v1::MeasurementSpec& spec) {
  // The kind fields are named as the kinds are.
  const google::protobuf::FieldDescriptor* field =
      spec.GetReflection()->GetOneofFieldDescriptor(
          spec, v1::MeasurementSpec::descriptor()->FindOneofByName("kind"));
  return field != nullptr ? field->name() : "unspecified";
}

}  // namespace curvd::server

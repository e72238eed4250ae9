#include "server/kind_table.h"

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;

core::ProbeDistribution ToCore(v1::ProbeDistribution d) {
  return d == v1::PROBE_DISTRIBUTION_GAUSSIAN
             ? core::ProbeDistribution::kGaussian
             : core::ProbeDistribution::kRademacher;
}

v1::ProbeDistribution ToProto(core::ProbeDistribution d) {
  return d == core::ProbeDistribution::kGaussian
             ? v1::PROBE_DISTRIBUTION_GAUSSIAN
             : v1::PROBE_DISTRIBUTION_RADEMACHER;
}

// ---- Options shared by several kinds ----

// A field the proto marks `optional`, or a plain one whose 0 means "the
// default", overrides core's default only when the spec sets it.
void ReadLanczos(const v1::SharpnessSpec& s, core::LanczosOptions* o) {
  if (s.has_top_k()) o->top_k = s.top_k();
  o->bottom_k = s.bottom_k();
  if (s.max_iterations() != 0) o->max_iterations = s.max_iterations();
  if (s.relative_tolerance() != 0) {
    o->relative_tolerance = s.relative_tolerance();
  }
  o->seed = s.seed();
}

void WriteLanczos(const core::LanczosOptions& o, v1::SharpnessSpec* s) {
  s->set_top_k(o.top_k);
  s->set_bottom_k(o.bottom_k);
  s->set_max_iterations(o.max_iterations);
  s->set_relative_tolerance(o.relative_tolerance);
  s->set_seed(o.seed);
}

void ReadTrace(const v1::HessianTraceSpec& t, core::TraceOptions* o) {
  o->distribution = ToCore(t.distribution());
  if (t.has_min_probes()) o->min_probes = t.min_probes();
  if (t.has_max_probes()) o->max_probes = t.max_probes();
  if (t.has_target_relative_error()) {
    o->target_relative_error = t.target_relative_error();
  }
  o->seed = t.seed();
}

void WriteTrace(const core::TraceOptions& o, v1::HessianTraceSpec* t) {
  t->set_distribution(ToProto(o.distribution));
  t->set_min_probes(o.min_probes);
  t->set_max_probes(o.max_probes);
  t->set_target_relative_error(o.target_relative_error);
  t->set_seed(o.seed);
}

void WriteTraceResult(const core::TraceResult& in,
                      v1::HessianTraceResult* out) {
  out->set_trace(in.trace);
  out->set_standard_error(in.standard_error);
  out->set_probes(in.probes);
  out->set_stop_reason(in.stop_reason);
}

// ---- One codec per kind: its spec and result messages, and the three
// conversions. A kind of core::Method without one does not compile. ----

template <typename M>
struct Codec;

template <>
struct Codec<core::SharpnessMethod> {
  using Spec = v1::SharpnessSpec;
  using Result = v1::SharpnessResult;
  static void Read(const Spec& s, const RequestLimits&,
                   core::LanczosOptions* o) {
    ReadLanczos(s, o);
  }
  static void Write(const core::LanczosOptions& o, Spec* s) {
    WriteLanczos(o, s);
  }
  static void WriteResult(const core::SharpnessResult& in, Result* out) {
    for (const core::Eigenpair& e : in.top) WriteEigenpair(e, out->add_top());
    for (const core::Eigenpair& e : in.bottom) {
      WriteEigenpair(e, out->add_bottom());
    }
    if (!in.top.empty()) out->set_sharpness(in.top[0].value);
    out->set_iterations(in.iterations);
    out->set_converged(in.converged);
  }
  static void WriteEigenpair(const core::Eigenpair& in, v1::Eigenpair* out) {
    out->set_value(in.value);
    out->set_residual_norm(in.residual_norm);
    out->set_converged(in.converged);
  }
};

template <>
struct Codec<core::SpectralDensityMethod> {
  using Spec = v1::SpectralDensitySpec;
  using Result = v1::SpectralDensityResult;
  static void Read(const Spec& d, const RequestLimits&, core::SlqOptions* o) {
    if (d.has_runs()) o->runs = d.runs();
    if (d.has_steps()) o->steps = d.steps();
    o->distribution = ToCore(d.distribution());
    o->seed = d.seed();
    if (d.has_grid_points()) o->grid_points = d.grid_points();
    o->grid_min = d.grid_min();
    o->grid_max = d.grid_max();
    o->sigma = d.sigma();
    if (d.has_sigma_fraction()) o->sigma_fraction = d.sigma_fraction();
    if (d.has_log_threshold()) o->log_threshold = d.log_threshold();
  }
  static void Write(const core::SlqOptions& o, Spec* d) {
    d->set_runs(o.runs);
    d->set_steps(o.steps);
    d->set_distribution(ToProto(o.distribution));
    d->set_seed(o.seed);
    d->set_grid_points(o.grid_points);
    d->set_grid_min(o.grid_min);
    d->set_grid_max(o.grid_max);
    d->set_sigma(o.sigma);
    d->set_sigma_fraction(o.sigma_fraction);
    if (o.log_threshold.has_value()) d->set_log_threshold(*o.log_threshold);
  }
  static void WriteResult(const core::SlqResult& in, Result* out) {
    for (const core::SlqRun& run : in.runs) {
      v1::SlqRun* r = out->add_runs();
      r->mutable_nodes()->Add(run.nodes.begin(), run.nodes.end());
      r->mutable_weights()->Add(run.weights.begin(), run.weights.end());
      r->set_steps(run.steps);
      r->set_invariant(run.invariant);
      r->mutable_alphas()->Add(run.alphas.begin(), run.alphas.end());
      r->mutable_betas()->Add(run.betas.begin(), run.betas.end());
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
    out->set_threshold_rule(in.threshold_rule);
    out->set_rank_lower(in.rank_lower);
    out->set_rank_upper(in.rank_upper);
    out->set_rank_unreliable(in.rank_unreliable);
    out->set_rank_warning(in.rank_warning);
  }
};

template <>
struct Codec<core::HessianTraceMethod> {
  using Spec = v1::HessianTraceSpec;
  using Result = v1::HessianTraceResult;
  static void Read(const Spec& t, const RequestLimits&,
                   core::TraceOptions* o) {
    ReadTrace(t, o);
  }
  static void Write(const core::TraceOptions& o, Spec* t) { WriteTrace(o, t); }
  static void WriteResult(const core::TraceResult& in, Result* out) {
    WriteTraceResult(in, out);
  }
};

template <>
struct Codec<core::HutchppMethod> {
  using Spec = v1::HutchppSpec;
  using Result = v1::HutchppResult;
  static void Read(const Spec& h, const RequestLimits&,
                   core::HutchppOptions* o) {
    o->distribution = ToCore(h.distribution());
    if (h.has_max_hvps()) o->max_hvps = h.max_hvps();
    o->sketch_size = h.sketch_size();
    if (h.has_target_relative_error()) {
      o->target_relative_error = h.target_relative_error();
    }
    if (h.has_min_residual_probes()) {
      o->min_residual_probes = h.min_residual_probes();
    }
    o->seed = h.seed();
  }
  static void Write(const core::HutchppOptions& o, Spec* h) {
    h->set_distribution(ToProto(o.distribution));
    h->set_max_hvps(o.max_hvps);
    h->set_sketch_size(o.sketch_size);
    h->set_target_relative_error(o.target_relative_error);
    h->set_min_residual_probes(o.min_residual_probes);
    h->set_seed(o.seed);
  }
  static void WriteResult(const core::HutchppResult& in, Result* out) {
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
};

template <>
struct Codec<core::AdaptiveTraceMethod> {
  using Spec = v1::AdaptiveTraceSpec;
  using Result = v1::AdaptiveTraceResult;
  // An absolute target given without a relative one turns the relative
  // default off, so that the absolute request is honoured exactly.
  static void Read(const Spec& a, const RequestLimits&,
                   core::AdaptiveTraceOptions* o) {
    o->distribution = ToCore(a.distribution());
    if (a.has_max_hvps()) o->max_hvps = a.max_hvps();
    o->target_standard_error = a.target_standard_error();
    if (a.has_target_relative_error()) {
      o->target_relative_error = a.target_relative_error();
    } else if (a.target_standard_error() > 0) {
      o->target_relative_error = 0;
    }
    if (a.has_initial_sketch_size()) {
      o->initial_sketch_size = a.initial_sketch_size();
    }
    if (a.has_min_probes()) o->min_probes = a.min_probes();
    o->seed = a.seed();
  }
  static void Write(const core::AdaptiveTraceOptions& o, Spec* a) {
    a->set_distribution(ToProto(o.distribution));
    a->set_max_hvps(o.max_hvps);
    a->set_target_standard_error(o.target_standard_error);
    a->set_target_relative_error(o.target_relative_error);
    a->set_initial_sketch_size(o.initial_sketch_size);
    a->set_min_probes(o.min_probes);
    a->set_seed(o.seed);
  }
  static void WriteResult(const core::AdaptiveTraceResult& in, Result* out) {
    out->set_trace(in.trace);
    out->set_standard_error(in.standard_error);
    out->set_method(in.method);
    out->set_decision(in.decision);
    out->set_sketch_size(in.sketch_size);
    out->set_probes(in.probes);
    out->set_hvps(in.hvps);
    out->set_stop_reason(in.stop_reason);
    out->set_frobenius_norm_squared(in.frobenius_norm_squared);
    out->set_sketch_frobenius_fraction(in.sketch_frobenius_fraction);
  }
};

template <>
struct Codec<core::TraceCubedMethod> : Codec<core::HessianTraceMethod> {};

template <>
struct Codec<core::LossExpansionMethod> {
  using Spec = v1::LossExpansionSpec;
  using Result = v1::LossExpansionResult;
  static void Read(const Spec& e, const RequestLimits&,
                   core::LossExpansionOptions* o) {
    o->rho = e.rho();
    o->h0 = e.h0();
    o->ess = e.ess();
    o->num_steps = e.num_steps();
    ReadTrace(e.trace_h3(), &o->trace_cubed);
  }
  static void Write(const core::LossExpansionOptions& o, Spec* e) {
    e->set_rho(o.rho);
    e->set_h0(o.h0);
    e->set_ess(o.ess);
    e->set_num_steps(o.num_steps);
    WriteTrace(o.trace_cubed, e->mutable_trace_h3());
  }
  static void WriteResult(const core::LossExpansionResult& in, Result* out) {
    out->set_gradient_norm_squared(in.gradient_norm_squared);
    out->set_gradient_curvature(in.gradient_curvature);
    WriteTraceResult(in.trace_cubed, out->mutable_trace_h3());
    out->set_sigma_squared(in.sigma_squared);
    out->set_first_order_term(in.first_order_term);
    out->set_second_order_term(in.second_order_term);
    out->set_noise_term(in.noise_term);
    out->set_noise_term_standard_error(in.noise_term_standard_error);
    out->set_total(in.total);
    out->set_total_standard_error(in.total_standard_error);
  }
};

template <>
struct Codec<core::ExactHessianMethod> {
  using Spec = v1::ExactHessianSpec;
  using Result = v1::ExactHessianResult;
  // The caps are the server's, never the client's.
  static void Read(const Spec& x, const RequestLimits& limits,
                   core::ExactHessianOptions* o) {
    o->max_parameters = limits.exact_hessian_max_parameters;
    o->max_matrix_parameters = limits.exact_hessian_max_matrix_parameters;
    o->return_matrix = x.return_matrix();
  }
  static void Write(const core::ExactHessianOptions& o, Spec* x) {
    x->set_return_matrix(o.return_matrix);
  }
  static void WriteResult(const core::ExactHessianResult& in, Result* out) {
    out->mutable_eigenvalues()->Add(in.eigenvalues.begin(),
                                    in.eigenvalues.end());
    out->set_rank(in.rank);
    out->set_rank_tolerance(in.rank_tolerance);
    out->set_rank_rule(in.rank_rule);
    out->set_positive(in.positive);
    out->set_negative(in.negative);
    out->set_condition_number(in.condition_number);
    out->set_log_determinant_positive(in.log_determinant_positive);
    out->set_asymmetry(in.asymmetry);
    out->mutable_matrix()->Add(in.matrix.begin(), in.matrix.end());
    out->set_noise_scale(in.noise_scale);
    out->set_worst_case_tolerance(in.worst_case_tolerance);
    out->set_worst_case_rank(in.worst_case_rank);
    out->set_rank_gap_decades(in.rank_gap_decades);
    out->set_rank_at_tenth_tolerance(in.rank_at_tenth_tolerance);
    out->set_rank_at_tenfold_tolerance(in.rank_at_tenfold_tolerance);
    out->set_rank_clear_cut(in.rank_clear_cut);
    out->set_rank_warning(in.rank_warning);
  }
};

template <>
struct Codec<core::PowerIterationMethod> {
  using Spec = v1::PowerIterationSpec;
  using Result = v1::PowerIterationResult;
  static void Read(const Spec& p, const RequestLimits&,
                   core::PowerIterationOptions* o) {
    if (p.has_top_k()) o->top_k = p.top_k();
    if (p.has_max_iterations()) o->max_iterations = p.max_iterations();
    if (p.has_relative_tolerance()) {
      o->relative_tolerance = p.relative_tolerance();
    }
    o->seed = p.seed();
  }
  static void Write(const core::PowerIterationOptions& o, Spec* p) {
    p->set_top_k(o.top_k);
    p->set_max_iterations(o.max_iterations);
    p->set_relative_tolerance(o.relative_tolerance);
    p->set_seed(o.seed);
  }
  static void WriteResult(const core::PowerIterationResult& in, Result* out) {
    for (const core::PowerEigenpair& pair : in.pairs) {
      v1::PowerEigenpair* p = out->add_pairs();
      p->set_value(pair.value);
      p->set_residual_norm(pair.residual_norm);
      p->set_iterations(pair.iterations);
      p->set_converged(pair.converged);
    }
    out->set_converged(in.converged);
  }
};

template <>
struct Codec<core::LossSliceMethod> {
  using Spec = v1::LossSliceSpec;
  using Result = v1::LossSliceResult;
  static void Read(const Spec& s, const RequestLimits&,
                   core::LossSliceOptions* o) {
    o->direction = s.direction() == v1::LossSliceSpec::RANDOM
                       ? core::SliceDirection::kRandom
                       : core::SliceDirection::kTopEigenvector;
    if (s.has_points()) o->points = s.points();
    // Both 0 keeps core's default interval.
    if (s.t_min() != 0 || s.t_max() != 0) {
      o->t_min = s.t_min();
      o->t_max = s.t_max();
    }
    o->seed = s.seed();
    ReadLanczos(s.lanczos(), &o->lanczos);
    // Only the top eigenvector is wanted, whatever the spec's top_k says.
    o->lanczos.top_k = 1;
    o->lanczos.bottom_k = 0;
  }
  static void Write(const core::LossSliceOptions& o, Spec* s) {
    s->set_direction(o.direction == core::SliceDirection::kRandom
                         ? v1::LossSliceSpec::RANDOM
                         : v1::LossSliceSpec::TOP_EIGENVECTOR);
    s->set_points(o.points);
    s->set_t_min(o.t_min);
    s->set_t_max(o.t_max);
    s->set_seed(o.seed);
    WriteLanczos(o.lanczos, s->mutable_lanczos());
  }
  static void WriteResult(const core::LossSliceResult& in, Result* out) {
    out->mutable_t()->Add(in.t.begin(), in.t.end());
    out->mutable_loss()->Add(in.loss.begin(), in.loss.end());
    out->set_direction(in.direction);
    out->set_eigenvalue(in.eigenvalue);
    out->set_residual_norm(in.residual_norm);
    out->set_direction_curvature(in.direction_curvature);
  }
};

// ---- The LLC's settings, shared by llc and llc_calibration.base ----

// InvalidArgument naming `field` for an enum value outside the proto's enum.
template <typename Enum>
absl::Status UnknownEnumValue(const std::string& field, Enum value,
                              const char* known) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " ", static_cast<int>(value), " is not one of ",
                   known));
}

absl::StatusOr<core::LlcSampler> ToCore(v1::LlcSpec::Sampler s,
                                        const std::string& field) {
  switch (s) {
    case v1::LlcSpec::SAMPLER_UNSPECIFIED:
    case v1::LlcSpec::SGLD:
      return core::LlcSampler::kSgld;
    case v1::LlcSpec::RMSPROP_SGLD:
      return core::LlcSampler::kRmspropSgld;
    case v1::LlcSpec::SGNHT:
      return core::LlcSampler::kSgnht;
    case v1::LlcSpec::MALA:
      return core::LlcSampler::kMala;
    default:
      return UnknownEnumValue(field, s, "SGLD, RMSPROP_SGLD, SGNHT, MALA");
  }
}

v1::LlcSpec::Sampler ToProto(core::LlcSampler s) {
  switch (s) {
    case core::LlcSampler::kRmspropSgld:
      return v1::LlcSpec::RMSPROP_SGLD;
    case core::LlcSampler::kSgnht:
      return v1::LlcSpec::SGNHT;
    case core::LlcSampler::kMala:
      return v1::LlcSpec::MALA;
    case core::LlcSampler::kSgld:
      break;
  }
  return v1::LlcSpec::SGLD;
}

absl::StatusOr<core::NBetaConvention> ToCore(v1::LlcSpec::NBetaConvention c,
                                             const std::string& field) {
  switch (c) {
    case v1::LlcSpec::N_BETA_CONVENTION_UNSPECIFIED:
    case v1::LlcSpec::DATASET:
      return core::NBetaConvention::kDataset;
    case v1::LlcSpec::BATCH:
      return core::NBetaConvention::kBatch;
    case v1::LlcSpec::GIVEN:
      return core::NBetaConvention::kGiven;
    default:
      return UnknownEnumValue(field, c, "DATASET, BATCH, GIVEN");
  }
}

v1::LlcSpec::NBetaConvention ToProto(core::NBetaConvention c) {
  switch (c) {
    case core::NBetaConvention::kBatch:
      return v1::LlcSpec::BATCH;
    case core::NBetaConvention::kGiven:
      return v1::LlcSpec::GIVEN;
    case core::NBetaConvention::kDataset:
      break;
  }
  return v1::LlcSpec::DATASET;
}

absl::StatusOr<core::DivergencePolicy> ToCore(v1::LlcSpec::OnDivergence d,
                                              const std::string& field) {
  switch (d) {
    case v1::LlcSpec::ON_DIVERGENCE_UNSPECIFIED:
    case v1::LlcSpec::DROP_CHAIN:
      return core::DivergencePolicy::kDropChain;
    case v1::LlcSpec::FAIL:
      return core::DivergencePolicy::kFail;
    default:
      return UnknownEnumValue(field, d, "DROP_CHAIN, FAIL");
  }
}

// `field` names the message in errors ("llc", "llc_calibration.base"). A
// given n_beta wins over the convention (resources.proto, LlcSpec.n_beta).
absl::Status ReadLlc(const v1::LlcSpec& s, const std::string& field,
                     core::LlcOptions* o) {
  CURVD_ASSIGN_OR_RETURN(o->sampler, ToCore(s.sampler(), field + ".sampler"));
  if (s.has_step_size()) o->step_size = s.step_size();
  if (s.has_localization()) o->localization = s.localization();
  o->prior_precision = s.prior_precision();
  CURVD_ASSIGN_OR_RETURN(
      o->n_beta_convention,
      ToCore(s.n_beta_convention(), field + ".n_beta_convention"));
  if (s.has_n_beta()) {
    o->n_beta_convention = core::NBetaConvention::kGiven;
    o->n_beta = s.n_beta();
  }
  if (s.has_chains()) o->chains = s.chains();
  if (s.has_draws()) o->draws = s.draws();
  if (s.has_burn_in()) o->burn_in = s.burn_in();
  if (s.has_steps_between_draws()) {
    o->steps_between_draws = s.steps_between_draws();
  }
  if (s.has_batch_size()) o->batch_size = s.batch_size();
  o->seed = s.seed();
  o->full_loss_every = s.full_loss_every();
  if (s.has_divergence_factor()) o->divergence_factor = s.divergence_factor();
  CURVD_ASSIGN_OR_RETURN(o->on_divergence,
                         ToCore(s.on_divergence(), field + ".on_divergence"));
  if (s.has_rmsprop_alpha()) o->rmsprop_alpha = s.rmsprop_alpha();
  if (s.has_rmsprop_epsilon()) o->rmsprop_epsilon = s.rmsprop_epsilon();
  if (s.has_sgnht_diffusion()) o->sgnht_diffusion = s.sgnht_diffusion();
  if (s.has_trace_cap()) o->trace_cap = s.trace_cap();
  o->calibration = s.calibration();
  return absl::OkStatus();
}

// n_beta is written when known: given, or resolved by the run (the options a
// finished measurement ran with).
void WriteLlc(const core::LlcOptions& o, v1::LlcSpec* s) {
  s->set_sampler(ToProto(o.sampler));
  s->set_step_size(o.step_size);
  s->set_localization(o.localization);
  s->set_prior_precision(o.prior_precision);
  s->set_n_beta_convention(ToProto(o.n_beta_convention));
  if (o.n_beta_convention == core::NBetaConvention::kGiven || o.n_beta > 0) {
    s->set_n_beta(o.n_beta);
  }
  s->set_chains(o.chains);
  s->set_draws(o.draws);
  s->set_burn_in(o.burn_in);
  s->set_steps_between_draws(o.steps_between_draws);
  s->set_batch_size(o.batch_size);
  s->set_seed(o.seed);
  s->set_full_loss_every(o.full_loss_every);
  s->set_divergence_factor(o.divergence_factor);
  s->set_on_divergence(o.on_divergence == core::DivergencePolicy::kFail
                           ? v1::LlcSpec::FAIL
                           : v1::LlcSpec::DROP_CHAIN);
  s->set_rmsprop_alpha(o.rmsprop_alpha);
  s->set_rmsprop_epsilon(o.rmsprop_epsilon);
  s->set_sgnht_diffusion(o.sgnht_diffusion);
  s->set_trace_cap(o.trace_cap);
  s->set_use_latest_calibration(!o.calibration.empty());
  s->set_calibration(o.calibration);
}

void WriteLlcResult(const core::LlcResult& in, v1::LlcResult* out) {
  out->set_llc_mean(in.llc_mean);
  out->set_llc_std(in.llc_std);
  out->set_llc_standard_error(in.llc_standard_error);
  out->set_initial_loss(in.initial_loss);
  out->set_n_beta(in.n_beta);
  out->set_batch_size(in.batch_size);
  out->set_num_samples(in.num_samples);
  for (const core::LlcChain& chain : in.chains) {
    v1::LlcChain* c = out->add_chains();
    c->set_llc(chain.llc);
    c->mutable_loss_trace()->Add(chain.loss_trace.begin(),
                                 chain.loss_trace.end());
    c->mutable_llc_running_mean()->Add(chain.llc_running_mean.begin(),
                                       chain.llc_running_mean.end());
    c->mutable_distance_trace()->Add(chain.distance_trace.begin(),
                                     chain.distance_trace.end());
    c->mutable_full_loss_trace()->Add(chain.full_loss_trace.begin(),
                                      chain.full_loss_trace.end());
    c->set_diverged(chain.diverged);
    c->set_divergence_step(chain.divergence_step);
    c->set_divergence_reason(chain.divergence_reason);
    c->set_still_rising(chain.still_rising);
    c->set_rise_z_score(chain.rise_z_score);
    if (chain.acceptance_rate) c->set_acceptance_rate(*chain.acceptance_rate);
    if (chain.kinetic_temperature) {
      c->set_kinetic_temperature(*chain.kinetic_temperature);
    }
  }
  out->set_trace_stride(in.trace_stride);
  if (in.r_hat) out->set_r_hat(*in.r_hat);
  if (in.effective_sample_size) {
    out->set_effective_sample_size(*in.effective_sample_size);
  }
  if (in.wbic) out->set_wbic(*in.wbic);
  if (in.acceptance_rate) out->set_acceptance_rate(*in.acceptance_rate);
  out->set_divergence_threshold(in.divergence_threshold);
  out->set_chains_diverged(in.chains_diverged);
  out->mutable_warnings()->Assign(in.warnings.begin(), in.warnings.end());
  out->set_steps(in.steps);
}

template <>
struct Codec<core::LlcMethod> {
  using Spec = v1::LlcSpec;
  using Result = v1::LlcResult;
  // use_latest_calibration is resolved before (latest_calibration.h), into
  // `calibration` and the values of the cell.
  static absl::Status Read(const Spec& s, const RequestLimits&,
                           core::LlcOptions* o) {
    if (s.use_latest_calibration() && s.calibration().empty()) {
      return absl::FailedPreconditionError(
          "llc.use_latest_calibration was not resolved to a calibration "
          "measurement");
    }
    return ReadLlc(s, core::LlcMethod::kName, o);
  }
  static void Write(const core::LlcOptions& o, Spec* s) { WriteLlc(o, s); }
  static void WriteResult(const core::LlcResult& in, Result* out) {
    WriteLlcResult(in, out);
  }
};

template <>
struct Codec<core::LlcCalibrationMethod> {
  using Spec = v1::LlcCalibrationSpec;
  using Result = v1::LlcCalibrationResult;
  // Empty axes keep core's defaults; the base starts from core's short runs.
  static absl::Status Read(const Spec& c, const RequestLimits&,
                           core::LlcCalibrationOptions* o) {
    const std::string base =
        absl::StrCat(core::LlcCalibrationMethod::kName, ".base");
    if (c.base().use_latest_calibration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          base, ".use_latest_calibration must be unset: a calibration takes "
                "its step sizes and localizations from its own grid"));
    }
    CURVD_RETURN_IF_ERROR(ReadLlc(c.base(), base, &o->base));
    if (!c.step_sizes().empty()) {
      o->step_sizes.assign(c.step_sizes().begin(), c.step_sizes().end());
    }
    if (!c.localizations().empty()) {
      o->localizations.assign(c.localizations().begin(),
                              c.localizations().end());
    }
    o->n_betas.assign(c.n_betas().begin(), c.n_betas().end());
    return absl::OkStatus();
  }
  static void Write(const core::LlcCalibrationOptions& o, Spec* c) {
    WriteLlc(o.base, c->mutable_base());
    c->mutable_step_sizes()->Assign(o.step_sizes.begin(), o.step_sizes.end());
    c->mutable_localizations()->Assign(o.localizations.begin(),
                                       o.localizations.end());
    c->mutable_n_betas()->Assign(o.n_betas.begin(), o.n_betas.end());
  }
  static void WriteResult(const core::LlcCalibrationResult& in, Result* out) {
    for (const core::LlcCalibrationCell& cell : in.cells) {
      v1::LlcCalibrationCell* c = out->add_cells();
      c->set_step_size(cell.step_size);
      c->set_localization(cell.localization);
      c->set_n_beta(cell.n_beta);
      WriteLlcResult(cell.result, c->mutable_result());
      c->set_rejection(cell.rejection);
    }
    out->set_recommended(in.recommended);
    out->set_reason(in.reason);
  }
};

// ---- gop ----

absl::StatusOr<core::GopVariant> ToCore(v1::GopSpec::Variant v,
                                        const std::string& field) {
  switch (v) {
    case v1::GopSpec::VARIANT_UNSPECIFIED:
    case v1::GopSpec::EMPIRICAL_FISHER:
      return core::GopVariant::kEmpiricalFisher;
    case v1::GopSpec::GRADIENT_COVARIANCE:
      return core::GopVariant::kGradientCovariance;
    case v1::GopSpec::MEAN_GRADIENT:
      return core::GopVariant::kMeanGradient;
    default:
      return UnknownEnumValue(
          field, v, "EMPIRICAL_FISHER, GRADIENT_COVARIANCE, MEAN_GRADIENT");
  }
}

v1::GopSpec::Variant ToProto(core::GopVariant v) {
  switch (v) {
    case core::GopVariant::kGradientCovariance:
      return v1::GopSpec::GRADIENT_COVARIANCE;
    case core::GopVariant::kMeanGradient:
      return v1::GopSpec::MEAN_GRADIENT;
    case core::GopVariant::kEmpiricalFisher:
      break;
  }
  return v1::GopSpec::EMPIRICAL_FISHER;
}

absl::StatusOr<core::GopPath> ToCore(v1::GopSpec::Path p,
                                     const std::string& field) {
  switch (p) {
    case v1::GopSpec::PATH_UNSPECIFIED:
    case v1::GopSpec::PATH_AUTO:
      return core::GopPath::kAuto;
    case v1::GopSpec::PATH_GENERIC:
      return core::GopPath::kGeneric;
    case v1::GopSpec::PATH_FAST:
      return core::GopPath::kFast;
    default:
      return UnknownEnumValue(field, p, "PATH_AUTO, PATH_GENERIC, PATH_FAST");
  }
}

v1::GopSpec::Path ToProto(core::GopPath p) {
  switch (p) {
    case core::GopPath::kGeneric:
      return v1::GopSpec::PATH_GENERIC;
    case core::GopPath::kFast:
      return v1::GopSpec::PATH_FAST;
    case core::GopPath::kAuto:
      break;
  }
  return v1::GopSpec::PATH_AUTO;
}

void WriteGopMetrics(const core::GopMetrics& in, v1::GopMetrics* out) {
  out->set_size(in.size);
  out->mutable_eigenvalues()->Add(in.eigenvalues.begin(), in.eigenvalues.end());
  out->mutable_top_eigenvalues()->Add(in.top_eigenvalues.begin(),
                                      in.top_eigenvalues.end());
  out->mutable_explained_variance()->Add(in.explained_variance.begin(),
                                         in.explained_variance.end());
  out->set_trace(in.trace);
  out->set_frobenius_norm(in.frobenius_norm);
  out->set_spectral_norm(in.spectral_norm);
  out->set_nuclear_norm(in.nuclear_norm);
  out->set_rank(in.rank);
  out->set_rank_tolerance(in.rank_tolerance);
  out->set_rank_rule(in.rank_rule);
  out->set_effective_rank(in.effective_rank);
  out->set_stable_rank(in.stable_rank);
  out->set_condition_number(in.condition_number);
  out->set_log_pseudo_determinant(in.log_pseudo_determinant);
  out->set_max_nonzero(in.max_nonzero);
  out->set_min_nonzero(in.min_nonzero);
  out->set_mean_nonzero(in.mean_nonzero);
  out->set_std_nonzero(in.std_nonzero);
  out->set_mean_all(in.mean_all);
  out->set_std_all(in.std_all);
}

template <>
struct Codec<core::GopMethod> {
  using Spec = v1::GopSpec;
  using Result = v1::GopResult;
  // The caps are the server's.
  static absl::Status Read(const Spec& s, const RequestLimits& limits,
                           core::GopOptions* o) {
    CURVD_ASSIGN_OR_RETURN(
        o->variant,
        ToCore(s.variant(), absl::StrCat(core::GopMethod::kName, ".variant")));
    if (s.has_num_samples()) o->num_samples = s.num_samples();
    o->seed = s.seed();
    o->per_layer = s.per_layer();
    if (s.has_top_k()) o->top_k = s.top_k();
    o->eigenvectors = s.eigenvectors();
    if (s.has_rank_rtol()) o->rank_rtol = s.rank_rtol();
    CURVD_ASSIGN_OR_RETURN(
        o->path,
        ToCore(s.path(), absl::StrCat(core::GopMethod::kName, ".path")));
    o->hessian_overlap_k = s.hessian_overlap_k();
    o->max_samples = limits.gop_max_samples;
    o->max_gram_floats = limits.gop_max_gram_floats;
    o->max_gradient_floats = limits.gop_max_gradient_floats;
    o->max_eigenvector_floats = limits.gop_max_eigenvector_floats;
    return absl::OkStatus();
  }
  // rank_rtol stays unset when it was: its default depends on N.
  static void Write(const core::GopOptions& o, Spec* s) {
    s->set_variant(ToProto(o.variant));
    s->set_num_samples(o.num_samples);
    s->set_seed(o.seed);
    s->set_per_layer(o.per_layer);
    s->set_top_k(o.top_k);
    s->set_eigenvectors(o.eigenvectors);
    if (o.rank_rtol.has_value()) s->set_rank_rtol(*o.rank_rtol);
    s->set_path(ToProto(o.path));
    s->set_hessian_overlap_k(o.hessian_overlap_k);
  }
  static void WriteResult(const core::GopResult& in, Result* out) {
    out->set_variant(ToProto(in.variant));
    out->set_num_samples(in.num_samples);
    out->set_num_parameters(in.num_parameters);
    out->set_path(in.path);
    WriteGopMetrics(in.metrics, out->mutable_metrics());
    for (const core::GopLayerResult& layer : in.layers) {
      v1::GopLayer* l = out->add_layers();
      l->set_name(layer.name);
      l->set_size(layer.size);
      WriteGopMetrics(layer.metrics, l->mutable_metrics());
      l->set_trace_share(layer.trace_share);
    }
    v1::GopGradientNorms* norms = out->mutable_gradient_norms();
    norms->set_mean(in.gradient_norms.mean);
    norms->mutable_quantile_levels()->Add(
        in.gradient_norms.quantile_levels.begin(),
        in.gradient_norms.quantile_levels.end());
    norms->mutable_quantiles()->Add(in.gradient_norms.quantiles.begin(),
                                    in.gradient_norms.quantiles.end());
    if (in.signal_to_noise) out->set_signal_to_noise(*in.signal_to_noise);
    // The eigenvectors themselves travel as a blob (result_blobs.h).
    out->set_num_eigenvectors(in.num_eigenvectors);
    if (in.hessian_overlap) {
      WriteHessianOverlap(*in.hessian_overlap, out->mutable_hessian_overlap());
    }
  }
  static void WriteHessianOverlap(const core::GopHessianOverlap& in,
                                  v1::GopHessianOverlap* out) {
    out->set_k(in.k);
    out->set_gop_dimension(in.gop_dimension);
    out->set_hessian_dimension(in.hessian_dimension);
    out->set_overlap(in.overlap);
    out->set_random_baseline(in.random_baseline);
    out->mutable_cosines()->Add(in.cosines.begin(), in.cosines.end());
    for (const core::Eigenpair& e : in.hessian_eigenpairs) {
      Codec<core::SharpnessMethod>::WriteEigenpair(
          e, out->add_hessian_eigenpairs());
    }
    out->set_lanczos_iterations(in.lanczos_iterations);
    out->set_lanczos_converged(in.lanczos_converged);
  }
};

// `message` as the generated type T. Callers pass the message of the row's
// field, whose type the table test checks is spec_type (result_type).
template <typename T>
T* As(google::protobuf::Message* message) {
  return google::protobuf::DynamicCastToGenerated<T>(message);
}

template <typename M>
KindRow MakeRow() {
  using C = Codec<M>;
  using Spec = typename C::Spec;
  using Result = typename C::Result;
  KindRow row;
  row.name = M::kName;
  row.spec_type = Spec::descriptor();
  row.result_type = Result::descriptor();
  row.read_spec = [](const google::protobuf::Message& spec,
                     const RequestLimits& limits)
      -> absl::StatusOr<core::Method> {
    const Spec* typed = google::protobuf::DynamicCastToGenerated<Spec>(&spec);
    if (typed == nullptr) {
      return absl::InternalError(absl::StrCat(M::kName, " read a ",
                                              spec.GetTypeName(), ", not a ",
                                              Spec::descriptor()->full_name()));
    }
    M method;
    // A codec's Read returns a Status when the spec can hold values core
    // cannot (an enum value outside the proto's enum), void otherwise.
    if constexpr (std::is_same_v<decltype(C::Read(*typed, limits,
                                                  &method.options)),
                                 absl::Status>) {
      CURVD_RETURN_IF_ERROR(C::Read(*typed, limits, &method.options));
    } else {
      C::Read(*typed, limits, &method.options);
    }
    return core::Method(std::move(method));
  };
  row.write_spec = [](const core::Method& method,
                      google::protobuf::Message* spec) {
    C::Write(std::get<M>(method).options, As<Spec>(spec));
  };
  row.write_result = [](const core::Method& method,
                        google::protobuf::Message* result) {
    C::WriteResult(std::get<M>(method).result, As<Result>(result));
  };
  return row;
}

template <size_t... I>
std::vector<KindRow> MakeTable(std::index_sequence<I...>) {
  return {MakeRow<std::variant_alternative_t<I, core::Method>>()...};
}

}  // namespace

const std::vector<KindRow>& KindTable() {
  static const std::vector<KindRow>* table = new std::vector<KindRow>(
      MakeTable(std::make_index_sequence<std::variant_size_v<core::Method>>()));
  return *table;
}

const KindRow* FindKindRow(absl::string_view name) {
  for (const KindRow& row : KindTable()) {
    if (row.name == name) return &row;
  }
  return nullptr;
}

}  // namespace curvd::server

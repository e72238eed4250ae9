#include "server/spec_conversion.h"

#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The options of `request`'s method of kind M; a test failure (and core's
// defaults) when it has none.
template <typename M>
decltype(M::options) Options(const core::MeasurementRequest& request) {
  const M* method = request.Find<M>();
  if (method == nullptr) {
    ADD_FAILURE() << "the request has no " << M::kName;
    return {};
  }
  return method->options;
}

// Whether `request` runs exactly one method, of kind M.
template <typename M>
bool IsSingle(const core::MeasurementRequest& request) {
  return request.methods.size() == 1 && request.Find<M>() != nullptr;
}

// A result whose only method is of kind M, with `result`.
template <typename M>
core::MeasurementResult ResultOf(decltype(M::result) result) {
  core::MeasurementResult r;
  M method;
  method.result = std::move(result);
  r.methods.push_back(std::move(method));
  return r;
}

TEST(SpecConversionTest, AppliesDocumentedDefaultsToUnsetFields) {
  v1::MeasurementSpec sharpness;
  sharpness.mutable_sharpness();
  auto request = ToCoreRequest(sharpness);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(IsSingle<core::SharpnessMethod>(*request));
  EXPECT_EQ(Options<core::SharpnessMethod>(*request).top_k, 1);
  EXPECT_EQ(Options<core::SharpnessMethod>(*request).max_iterations, 100);
  EXPECT_DOUBLE_EQ(Options<core::SharpnessMethod>(*request).relative_tolerance, 1e-6);
  EXPECT_EQ(request->objective.loss, core::LossFunction::kCrossEntropy);

  v1::MeasurementSpec trace;
  trace.mutable_hessian_trace();
  trace.set_loss(v1::LOSS_FUNCTION_MSE);
  request = ToCoreRequest(trace);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(Options<core::HessianTraceMethod>(*request).min_probes, 10);
  EXPECT_EQ(Options<core::HessianTraceMethod>(*request).max_probes, 200);
  EXPECT_DOUBLE_EQ(Options<core::HessianTraceMethod>(*request).target_relative_error, 0.01);
  EXPECT_EQ(request->objective.loss, core::LossFunction::kMse);
}

TEST(SpecConversionTest, ExplicitZerosAreOutOfRangeOrMeaningful) {
  v1::MeasurementSpec k0;
  k0.mutable_sharpness()->set_top_k(0);
  EXPECT_THAT(std::string(ToCoreRequest(k0).status().message()),
              HasSubstr("top_k"));

  v1::MeasurementSpec probes0;
  probes0.mutable_hessian_trace()->set_min_probes(0);
  EXPECT_EQ(ToCoreRequest(probes0).status().code(),
            absl::StatusCode::kInvalidArgument);

  v1::MeasurementSpec max0;
  max0.mutable_hessian_trace()->set_max_probes(0);
  EXPECT_EQ(ToCoreRequest(max0).status().code(),
            absl::StatusCode::kInvalidArgument);

  // An explicit target of 0 means "run max_probes", not the default.
  v1::MeasurementSpec target0;
  target0.mutable_hessian_trace()->set_target_relative_error(0);
  EXPECT_DOUBLE_EQ(Options<core::HessianTraceMethod>(*ToCoreRequest(target0)).target_relative_error, 0.0);

  EXPECT_EQ(ToCoreRequest(v1::MeasurementSpec()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SpecConversionTest, ResultsFillDiagnosticsAndTheResultOneof) {
  core::SharpnessResult sharpness;
  sharpness.top = {{5.0, 1e-7, true}, {3.0, 1e-5, false}};
  sharpness.iterations = 20;
  core::MeasurementResult result =
      ResultOf<core::SharpnessMethod>(std::move(sharpness));
  result.hvps = 40;
  result.compute_seconds = 1.5;
  result.device = "cpu";
  v1::Measurement m;
  m.mutable_spec()->mutable_sharpness();
  ApplyResult(result, &m);
  EXPECT_DOUBLE_EQ(m.sharpness().sharpness(), 5.0);
  ASSERT_EQ(m.sharpness().top_size(), 2);
  EXPECT_FALSE(m.sharpness().top(1).converged());
  EXPECT_EQ(m.diagnostics().hvps(), 40);
  EXPECT_EQ(m.diagnostics().compute_duration().seconds(), 1);
  EXPECT_EQ(m.diagnostics().compute_duration().nanos(), 500000000);
  EXPECT_EQ(KindName(v1::MeasurementSpec()), "unspecified");
}

TEST(SpecConversionTest, PrecisionTravelsBothWays) {
  for (auto [proto, core_precision] :
       {std::pair{v1::PRECISION_UNSPECIFIED, core::Precision::kFloat32},
        std::pair{v1::PRECISION_FLOAT32, core::Precision::kFloat32},
        std::pair{v1::PRECISION_FLOAT64, core::Precision::kFloat64},
        std::pair{v1::PRECISION_TF32, core::Precision::kTf32}}) {
    SCOPED_TRACE(v1::Precision_Name(proto));
    v1::MeasurementSpec spec;
    spec.mutable_sharpness();
    spec.set_precision(proto);
    auto request = ToCoreRequest(spec);
    ASSERT_TRUE(request.ok()) << request.status();
    EXPECT_EQ(request->objective.precision, core_precision);

    core::MeasurementResult result;
    result.precision = core_precision;
    v1::Measurement m;
    ApplyResult(result, &m);
    EXPECT_EQ(m.diagnostics().precision(), proto == v1::PRECISION_UNSPECIFIED
                                               ? v1::PRECISION_FLOAT32
                                               : proto);
  }
}

TEST(SpecConversionTest, NewKindsGetTheDocumentedDefaults) {
  v1::MeasurementSpec density;
  density.mutable_spectral_density();
  auto request = ToCoreRequest(density);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(IsSingle<core::SpectralDensityMethod>(*request));
  EXPECT_EQ(Options<core::SpectralDensityMethod>(*request).runs, 10);
  EXPECT_EQ(Options<core::SpectralDensityMethod>(*request).steps, 100);
  EXPECT_EQ(Options<core::SpectralDensityMethod>(*request).grid_points, 1000);
  EXPECT_DOUBLE_EQ(Options<core::SpectralDensityMethod>(*request).sigma, 0);
  EXPECT_DOUBLE_EQ(Options<core::SpectralDensityMethod>(*request).sigma_fraction, 0.01);
  // No absolute floor: the cut follows the relative rule alone.
  EXPECT_FALSE(Options<core::SpectralDensityMethod>(*request).log_threshold.has_value());
  EXPECT_EQ(request->op, core::CurvatureOperator::kHessian);
  EXPECT_TRUE(request->block.names.empty());

  v1::MeasurementSpec hutchpp;
  hutchpp.mutable_hutchpp();
  request = ToCoreRequest(hutchpp);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(IsSingle<core::HutchppMethod>(*request));
  EXPECT_EQ(Options<core::HutchppMethod>(*request).max_hvps, 300);
  EXPECT_EQ(Options<core::HutchppMethod>(*request).sketch_size, 0);
  EXPECT_DOUBLE_EQ(Options<core::HutchppMethod>(*request).target_relative_error, 0.01);
  EXPECT_EQ(Options<core::HutchppMethod>(*request).min_residual_probes, 10);

  v1::MeasurementSpec cubed;
  cubed.mutable_trace_h3();
  request = ToCoreRequest(cubed);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(IsSingle<core::TraceCubedMethod>(*request));
  EXPECT_EQ(Options<core::TraceCubedMethod>(*request).min_probes, 10);
  EXPECT_EQ(Options<core::TraceCubedMethod>(*request).max_probes, 200);
  EXPECT_DOUBLE_EQ(Options<core::TraceCubedMethod>(*request).target_relative_error, 0.01);

  v1::MeasurementSpec exact;
  exact.mutable_exact_hessian();
  request = ToCoreRequest(exact);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(IsSingle<core::ExactHessianMethod>(*request));
  EXPECT_EQ(Options<core::ExactHessianMethod>(*request).max_parameters, 20000);
  EXPECT_EQ(Options<core::ExactHessianMethod>(*request).max_matrix_parameters, 1000);
  EXPECT_FALSE(Options<core::ExactHessianMethod>(*request).return_matrix);

  v1::MeasurementSpec power;
  power.mutable_power_iteration();
  request = ToCoreRequest(power);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(Options<core::PowerIterationMethod>(*request).top_k, 1);
  EXPECT_EQ(Options<core::PowerIterationMethod>(*request).max_iterations, 1000);
  EXPECT_DOUBLE_EQ(Options<core::PowerIterationMethod>(*request).relative_tolerance, 1e-6);

  v1::MeasurementSpec slice;
  slice.mutable_loss_slice();
  request = ToCoreRequest(slice);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(Options<core::LossSliceMethod>(*request).direction,
            core::SliceDirection::kTopEigenvector);
  EXPECT_EQ(Options<core::LossSliceMethod>(*request).points, 41);
  EXPECT_DOUBLE_EQ(Options<core::LossSliceMethod>(*request).t_min, -1);
  EXPECT_DOUBLE_EQ(Options<core::LossSliceMethod>(*request).t_max, 1);
  EXPECT_EQ(Options<core::LossSliceMethod>(*request).lanczos.top_k, 1);
  EXPECT_EQ(Options<core::LossSliceMethod>(*request).lanczos.max_iterations, 100);

  // The loss expansion's four numbers have no default.
  v1::MeasurementSpec expansion;
  expansion.mutable_loss_expansion();
  EXPECT_THAT(std::string(ToCoreRequest(expansion).status().message()),
              HasSubstr("loss_expansion.rho must be finite and > 0, got 0"));
}

TEST(SpecConversionTest, NewKindsCarryExplicitValues) {
  v1::MeasurementSpec density;
  density.set_operator_(v1::OPERATOR_GGN);
  density.mutable_block()->add_names("fc0.weight");
  density.mutable_block()->add_prefixes("fc1.");
  v1::SpectralDensitySpec* d = density.mutable_spectral_density();
  d->set_runs(3);
  d->set_steps(20);
  d->set_distribution(v1::PROBE_DISTRIBUTION_GAUSSIAN);
  d->set_seed(9);
  d->set_grid_points(50);
  d->set_grid_min(-2);
  d->set_grid_max(5);
  d->set_sigma(0.5);
  d->set_sigma_fraction(0.2);
  d->set_log_threshold(1e-3);
  auto request = ToCoreRequest(density);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->op, core::CurvatureOperator::kGgn);
  EXPECT_THAT(request->block.names, ElementsAre("fc0.weight"));
  EXPECT_THAT(request->block.prefixes, ElementsAre("fc1."));
  EXPECT_EQ(Options<core::SpectralDensityMethod>(*request).runs, 3);
  EXPECT_EQ(Options<core::SpectralDensityMethod>(*request).steps, 20);
  EXPECT_EQ(Options<core::SpectralDensityMethod>(*request).distribution, core::ProbeDistribution::kGaussian);
  EXPECT_EQ(Options<core::SpectralDensityMethod>(*request).seed, 9u);
  EXPECT_EQ(Options<core::SpectralDensityMethod>(*request).grid_points, 50);
  EXPECT_DOUBLE_EQ(Options<core::SpectralDensityMethod>(*request).grid_min, -2);
  EXPECT_DOUBLE_EQ(Options<core::SpectralDensityMethod>(*request).grid_max, 5);
  EXPECT_DOUBLE_EQ(Options<core::SpectralDensityMethod>(*request).sigma, 0.5);
  EXPECT_DOUBLE_EQ(Options<core::SpectralDensityMethod>(*request).sigma_fraction, 0.2);
  EXPECT_DOUBLE_EQ(Options<core::SpectralDensityMethod>(*request).log_threshold.value(), 1e-3);

  v1::MeasurementSpec hutchpp;
  v1::HutchppSpec* h = hutchpp.mutable_hutchpp();
  h->set_max_hvps(31);
  h->set_sketch_size(15);
  h->set_target_relative_error(0);
  h->set_min_residual_probes(2);
  h->set_seed(4);
  request = ToCoreRequest(hutchpp);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(Options<core::HutchppMethod>(*request).max_hvps, 31);
  EXPECT_EQ(Options<core::HutchppMethod>(*request).sketch_size, 15);
  EXPECT_DOUBLE_EQ(Options<core::HutchppMethod>(*request).target_relative_error, 0);
  EXPECT_EQ(Options<core::HutchppMethod>(*request).min_residual_probes, 2);
  EXPECT_EQ(Options<core::HutchppMethod>(*request).seed, 4u);

  v1::MeasurementSpec expansion;
  v1::LossExpansionSpec* e = expansion.mutable_loss_expansion();
  e->set_rho(0.1);
  e->set_h0(2);
  e->set_ess(64);
  e->set_num_steps(1000);
  e->mutable_trace_h3()->set_max_probes(30);
  request = ToCoreRequest(expansion);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_DOUBLE_EQ(Options<core::LossExpansionMethod>(*request).rho, 0.1);
  EXPECT_DOUBLE_EQ(Options<core::LossExpansionMethod>(*request).h0, 2);
  EXPECT_DOUBLE_EQ(Options<core::LossExpansionMethod>(*request).ess, 64);
  EXPECT_DOUBLE_EQ(Options<core::LossExpansionMethod>(*request).num_steps, 1000);
  EXPECT_EQ(Options<core::LossExpansionMethod>(*request).trace_cubed.max_probes, 30);
  EXPECT_EQ(Options<core::LossExpansionMethod>(*request).trace_cubed.min_probes, 10);

  v1::MeasurementSpec exact;
  exact.mutable_exact_hessian()->set_return_matrix(true);
  request = ToCoreRequest(exact, RequestLimits{500, 50});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(Options<core::ExactHessianMethod>(*request).return_matrix);
  EXPECT_EQ(Options<core::ExactHessianMethod>(*request).max_parameters, 500);
  EXPECT_EQ(Options<core::ExactHessianMethod>(*request).max_matrix_parameters, 50);

  v1::MeasurementSpec power;
  power.mutable_power_iteration()->set_top_k(3);
  power.mutable_power_iteration()->set_max_iterations(50);
  power.mutable_power_iteration()->set_relative_tolerance(1e-3);
  request = ToCoreRequest(power);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(Options<core::PowerIterationMethod>(*request).top_k, 3);
  EXPECT_EQ(Options<core::PowerIterationMethod>(*request).max_iterations, 50);
  EXPECT_DOUBLE_EQ(Options<core::PowerIterationMethod>(*request).relative_tolerance, 1e-3);

  v1::MeasurementSpec slice;
  v1::LossSliceSpec* l = slice.mutable_loss_slice();
  l->set_direction(v1::LossSliceSpec::RANDOM);
  l->set_points(5);
  l->set_t_min(-0.5);
  l->set_t_max(2);
  l->set_seed(3);
  l->mutable_lanczos()->set_top_k(7);  // ignored: one eigenvector is enough
  request = ToCoreRequest(slice);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(Options<core::LossSliceMethod>(*request).direction, core::SliceDirection::kRandom);
  EXPECT_EQ(Options<core::LossSliceMethod>(*request).points, 5);
  EXPECT_DOUBLE_EQ(Options<core::LossSliceMethod>(*request).t_min, -0.5);
  EXPECT_DOUBLE_EQ(Options<core::LossSliceMethod>(*request).t_max, 2);
  EXPECT_EQ(Options<core::LossSliceMethod>(*request).seed, 3u);
  EXPECT_EQ(Options<core::LossSliceMethod>(*request).lanczos.top_k, 1);
}

// Unset, adaptive_trace runs to 1% relative error; an absolute target given
// alone turns the relative one off, and the effective spec records the
// targets used, so that it reads back as the same request.
TEST(SpecConversionTest, AdaptiveTraceTargetsAndTheirRecordedDefaults) {
  using core::AdaptiveTraceMethod;
  v1::MeasurementSpec unset;
  unset.mutable_adaptive_trace();
  auto request = ToCoreRequest(unset);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(IsSingle<AdaptiveTraceMethod>(*request));
  const core::AdaptiveTraceOptions defaults;
  EXPECT_EQ(Options<AdaptiveTraceMethod>(*request).max_hvps, 1000);
  EXPECT_EQ(Options<AdaptiveTraceMethod>(*request).max_hvps, defaults.max_hvps);
  EXPECT_DOUBLE_EQ(Options<AdaptiveTraceMethod>(*request).target_standard_error,
                   0);
  EXPECT_DOUBLE_EQ(Options<AdaptiveTraceMethod>(*request).target_relative_error,
                   0.01);
  EXPECT_EQ(Options<AdaptiveTraceMethod>(*request).initial_sketch_size, 8);
  EXPECT_EQ(Options<AdaptiveTraceMethod>(*request).min_probes, 10);
  v1::MeasurementSpec effective = EffectiveSpec(unset, *request);
  EXPECT_EQ(effective.adaptive_trace().max_hvps(), 1000);
  EXPECT_DOUBLE_EQ(effective.adaptive_trace().target_relative_error(), 0.01);
  EXPECT_EQ(effective.adaptive_trace().initial_sketch_size(), 8);
  EXPECT_EQ(effective.adaptive_trace().min_probes(), 10);

  v1::MeasurementSpec absolute;
  absolute.mutable_adaptive_trace()->set_target_standard_error(0.25);
  request = ToCoreRequest(absolute);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_DOUBLE_EQ(Options<AdaptiveTraceMethod>(*request).target_standard_error,
                   0.25);
  EXPECT_DOUBLE_EQ(Options<AdaptiveTraceMethod>(*request).target_relative_error,
                   0);
  effective = EffectiveSpec(absolute, *request);
  ASSERT_TRUE(effective.adaptive_trace().has_target_relative_error());
  EXPECT_DOUBLE_EQ(effective.adaptive_trace().target_relative_error(), 0);
  EXPECT_DOUBLE_EQ(effective.adaptive_trace().target_standard_error(), 0.25);
  auto again = ToCoreRequest(effective);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_DOUBLE_EQ(Options<AdaptiveTraceMethod>(*again).target_relative_error,
                   0);
  EXPECT_DOUBLE_EQ(Options<AdaptiveTraceMethod>(*again).target_standard_error,
                   0.25);

  // Both given: both kept, whichever is met first stops it.
  v1::MeasurementSpec both;
  v1::AdaptiveTraceSpec* a = both.mutable_adaptive_trace();
  a->set_distribution(v1::PROBE_DISTRIBUTION_GAUSSIAN);
  a->set_max_hvps(300);
  a->set_target_standard_error(0.5);
  a->set_target_relative_error(0.02);
  a->set_initial_sketch_size(4);
  a->set_min_probes(3);
  a->set_seed(9);
  request = ToCoreRequest(both);
  ASSERT_TRUE(request.ok()) << request.status();
  const core::AdaptiveTraceOptions o = Options<AdaptiveTraceMethod>(*request);
  EXPECT_EQ(o.distribution, core::ProbeDistribution::kGaussian);
  EXPECT_EQ(o.max_hvps, 300);
  EXPECT_DOUBLE_EQ(o.target_standard_error, 0.5);
  EXPECT_DOUBLE_EQ(o.target_relative_error, 0.02);
  EXPECT_EQ(o.initial_sketch_size, 4);
  EXPECT_EQ(o.min_probes, 3);
  EXPECT_EQ(o.seed, 9u);

  // In a plan, the same rule.
  v1::MeasurementSpec plan;
  plan.mutable_plan()->mutable_adaptive_trace()->set_target_standard_error(1);
  plan.mutable_plan()->mutable_hutchpp();
  request = ToCoreRequest(plan);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_DOUBLE_EQ(Options<AdaptiveTraceMethod>(*request).target_relative_error,
                   0);
  EXPECT_DOUBLE_EQ(Options<core::HutchppMethod>(*request).target_relative_error,
                   0.01);
}

TEST(SpecConversionTest, PlanListsItsKindsWithTheirOptions) {
  v1::MeasurementSpec spec;
  v1::MeasurementPlanSpec* plan = spec.mutable_plan();
  plan->mutable_spectral_density()->set_runs(4);
  plan->mutable_hessian_trace()->set_max_probes(20);
  plan->mutable_trace_h3()->set_min_probes(3);
  plan->mutable_exact_hessian();
  auto request = ToCoreRequest(spec, RequestLimits{100, 10});
  ASSERT_TRUE(request.ok()) << request.status();
  std::vector<std::string> kinds;
  for (const core::Method& method : request->methods) {
    kinds.push_back(core::MethodName(method));
  }
  EXPECT_THAT(kinds, ElementsAre("spectral_density", "hessian_trace",
                                 "trace_h3", "exact_hessian"));
  EXPECT_EQ(Options<core::SpectralDensityMethod>(*request).runs, 4);
  EXPECT_EQ(Options<core::SpectralDensityMethod>(*request).grid_points, 1000);
  EXPECT_EQ(Options<core::HessianTraceMethod>(*request).max_probes, 20);
  EXPECT_EQ(Options<core::TraceCubedMethod>(*request).min_probes, 3);
  EXPECT_EQ(Options<core::ExactHessianMethod>(*request).max_parameters, 100);
  EXPECT_EQ(KindName(spec), "plan");
}

// Each message names the proto field; every case is InvalidArgument.
TEST(SpecConversionTest, GopSpecTravelsBothWays) {
  v1::MeasurementSpec spec;
  v1::GopSpec* g = spec.mutable_gop();
  g->set_variant(v1::GopSpec::GRADIENT_COVARIANCE);
  g->set_num_samples(32);
  g->set_seed(7);
  g->set_per_layer(true);
  g->set_top_k(3);
  g->set_eigenvectors(true);
  g->set_rank_rtol(1e-9);
  g->set_path(v1::GopSpec::PATH_GENERIC);
  g->set_hessian_overlap_k(4);
  auto request = ToCoreRequest(spec);
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_TRUE(IsSingle<core::GopMethod>(*request));
  const core::GopOptions o = Options<core::GopMethod>(*request);
  EXPECT_EQ(o.variant, core::GopVariant::kGradientCovariance);
  EXPECT_EQ(o.num_samples, 32);
  EXPECT_EQ(o.seed, 7u);
  EXPECT_TRUE(o.per_layer);
  EXPECT_EQ(o.top_k, 3);
  EXPECT_TRUE(o.eigenvectors);
  ASSERT_TRUE(o.rank_rtol.has_value());
  EXPECT_DOUBLE_EQ(*o.rank_rtol, 1e-9);
  EXPECT_EQ(o.path, core::GopPath::kGeneric);
  EXPECT_EQ(o.hessian_overlap_k, 4);
  // The caps are the server's (core's defaults unless it lowers them).
  EXPECT_EQ(o.max_eigenvector_floats, core::GopOptions().max_eigenvector_floats);
  RequestLimits limits;
  limits.gop_max_samples = 11;
  limits.gop_max_gram_floats = 12;
  limits.gop_max_gradient_floats = 13;
  limits.gop_max_eigenvector_floats = 14;
  const core::GopOptions capped =
      Options<core::GopMethod>(ToCoreRequest(spec, limits).value());
  EXPECT_EQ(capped.max_samples, 11);
  EXPECT_EQ(capped.max_gram_floats, 12);
  EXPECT_EQ(capped.max_gradient_floats, 13);
  EXPECT_EQ(capped.max_eigenvector_floats, 14);
  const v1::MeasurementSpec effective = EffectiveSpec(spec, *request);
  EXPECT_EQ(effective.gop().variant(), v1::GopSpec::GRADIENT_COVARIANCE);
  EXPECT_EQ(effective.gop().num_samples(), 32);
  EXPECT_EQ(effective.gop().top_k(), 3);
  EXPECT_DOUBLE_EQ(effective.gop().rank_rtol(), 1e-9);
  EXPECT_EQ(effective.gop().path(), v1::GopSpec::PATH_GENERIC);
  EXPECT_EQ(effective.gop().hessian_overlap_k(), 4);

  // Unset: core's defaults, and rank_rtol stays unset (its rule depends on N).
  v1::MeasurementSpec plain;
  plain.mutable_gop();
  auto defaults = ToCoreRequest(plain);
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  const core::GopOptions d = Options<core::GopMethod>(*defaults);
  EXPECT_EQ(d.variant, core::GopVariant::kEmpiricalFisher);
  EXPECT_EQ(d.top_k, core::GopOptions().top_k);
  EXPECT_EQ(d.num_samples, 0);
  EXPECT_FALSE(d.rank_rtol.has_value());
  EXPECT_EQ(d.path, core::GopPath::kAuto);
  EXPECT_EQ(d.hessian_overlap_k, 0);
  EXPECT_FALSE(EffectiveSpec(plain, *defaults).gop().has_rank_rtol());
}

TEST(SpecConversionTest, GopRefusesAnUnknownVariantAndBadOptions) {
  v1::MeasurementSpec spec;
  spec.mutable_gop()->set_variant(static_cast<v1::GopSpec::Variant>(99));
  auto request = ToCoreRequest(spec);
  ASSERT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(request.status().message()),
              HasSubstr("gop.variant 99"));

  v1::MeasurementSpec path;
  path.mutable_gop()->set_path(static_cast<v1::GopSpec::Path>(9));
  auto unknown = ToCoreRequest(path);
  ASSERT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("gop.path 9"));
  // Fast with the mean gradient is refused before any model is loaded.
  path.mutable_gop()->set_path(v1::GopSpec::PATH_FAST);
  path.mutable_gop()->set_variant(v1::GopSpec::MEAN_GRADIENT);
  auto mean = ToCoreRequest(path);
  ASSERT_EQ(mean.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(mean.status().message()),
              HasSubstr("gop.path = fast"));
  // The overlap's k above the eigenpair cap, before any model is loaded.
  v1::MeasurementSpec overlap;
  overlap.mutable_gop()->set_hessian_overlap_k(65);
  auto too_many = ToCoreRequest(overlap);
  ASSERT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_many.status().message()),
              HasSubstr("gop.hessian_overlap_k must be in [0, 64], got 65"));

  v1::MeasurementSpec plan;
  plan.mutable_plan()->mutable_gop()->set_top_k(-1);
  auto planned = ToCoreRequest(plan);
  ASSERT_EQ(planned.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(planned.status().message()),
              HasSubstr("plan.gop.top_k must be >= 0"));

  v1::MeasurementSpec rtol;
  rtol.mutable_gop()->set_rank_rtol(1.5);
  auto refused = ToCoreRequest(rtol);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("gop.rank_rtol must be in (0, 1)"));
}

TEST(SpecConversionTest, OutOfRangeValuesNameTheField) {
  struct Case {
    std::string name;
    std::function<void(v1::MeasurementSpec*)> set;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"grid of zero points",
       [](v1::MeasurementSpec* s) {
         s->mutable_spectral_density()->set_grid_points(0);
       },
       "spectral_density.grid_points must be in [2, 100000], got 0"},
      {"no runs",
       [](v1::MeasurementSpec* s) {
         s->mutable_spectral_density()->set_runs(0);
       },
       "spectral_density.runs must be in [1, 1000], got 0"},
      {"too many steps",
       [](v1::MeasurementSpec* s) {
         s->mutable_spectral_density()->set_steps(1001);
       },
       "spectral_density.steps"},
      {"negative sigma",
       [](v1::MeasurementSpec* s) {
         s->mutable_spectral_density()->set_sigma(-1);
       },
       "spectral_density.sigma must be finite and >= 0"},
      {"sigma fraction 1",
       [](v1::MeasurementSpec* s) {
         s->mutable_spectral_density()->set_sigma_fraction(1);
       },
       "spectral_density.sigma_fraction must be in (0, 1)"},
      {"log threshold 0",
       [](v1::MeasurementSpec* s) {
         s->mutable_spectral_density()->set_log_threshold(0);
       },
       "spectral_density.log_threshold"},
      {"inverted grid",
       [](v1::MeasurementSpec* s) {
         s->mutable_spectral_density()->set_grid_min(3);
       },
       "spectral_density.grid_min must be finite and below grid_max"},
      {"negative probes",
       [](v1::MeasurementSpec* s) {
         s->mutable_trace_h3()->set_min_probes(-3);
       },
       "trace_h3.min_probes must be in [2, 100000]"},
      {"hutch++ budget of 2",
       [](v1::MeasurementSpec* s) { s->mutable_hutchpp()->set_max_hvps(2); },
       "hutchpp.max_hvps must be in [3, 100000], got 2"},
      {"sketch eats the budget",
       [](v1::MeasurementSpec* s) {
         s->mutable_hutchpp()->set_sketch_size(150);
       },
       "hutchpp.sketch_size"},
      {"one residual probe",
       [](v1::MeasurementSpec* s) {
         s->mutable_hutchpp()->set_min_residual_probes(1);
       },
       "hutchpp.min_residual_probes"},
      {"adaptive budget of 2",
       [](v1::MeasurementSpec* s) {
         s->mutable_adaptive_trace()->set_max_hvps(2);
       },
       "adaptive_trace.max_hvps must be in [3, 100000], got 2"},
      {"adaptive sketch eats the budget",
       [](v1::MeasurementSpec* s) {
         s->mutable_adaptive_trace()->set_max_hvps(20);
         s->mutable_adaptive_trace()->set_initial_sketch_size(19);
       },
       "adaptive_trace.initial_sketch_size must be in [1, 18], got 19"},
      {"adaptive sketch of 0",
       [](v1::MeasurementSpec* s) {
         s->mutable_adaptive_trace()->set_initial_sketch_size(0);
       },
       "adaptive_trace.initial_sketch_size"},
      {"adaptive one probe",
       [](v1::MeasurementSpec* s) {
         s->mutable_adaptive_trace()->set_min_probes(1);
       },
       "adaptive_trace.min_probes must be in [2, 1000], got 1"},
      {"negative absolute target",
       [](v1::MeasurementSpec* s) {
         s->mutable_adaptive_trace()->set_target_standard_error(-0.1);
       },
       "adaptive_trace.target_standard_error must be finite and >= 0"},
      {"infinite absolute target",
       [](v1::MeasurementSpec* s) {
         s->mutable_adaptive_trace()->set_target_standard_error(
             std::numeric_limits<double>::infinity());
       },
       "adaptive_trace.target_standard_error"},
      {"negative relative target",
       [](v1::MeasurementSpec* s) {
         s->mutable_adaptive_trace()->set_target_relative_error(-0.01);
       },
       "adaptive_trace.target_relative_error must be in [0, 1)"},
      {"no target",
       [](v1::MeasurementSpec* s) {
         s->mutable_adaptive_trace()->set_target_relative_error(0);
       },
       "adaptive_trace.target_standard_error or target_relative_error must "
       "be > 0"},
      {"rho 0",
       [](v1::MeasurementSpec* s) {
         v1::LossExpansionSpec* e = s->mutable_loss_expansion();
         e->set_h0(1);
         e->set_ess(1);
         e->set_num_steps(1);
       },
       "loss_expansion.rho must be finite and > 0, got 0"},
      {"infinite ess",
       [](v1::MeasurementSpec* s) {
         v1::LossExpansionSpec* e = s->mutable_loss_expansion();
         e->set_rho(1);
         e->set_h0(1);
         e->set_ess(std::numeric_limits<double>::infinity());
         e->set_num_steps(1);
       },
       "loss_expansion.ess"},
      {"expansion's trace options",
       [](v1::MeasurementSpec* s) {
         v1::LossExpansionSpec* e = s->mutable_loss_expansion();
         e->set_rho(1);
         e->set_h0(1);
         e->set_ess(1);
         e->set_num_steps(1);
         e->mutable_trace_h3()->set_max_probes(1);
       },
       "loss_expansion.trace_h3.max_probes"},
      {"power top_k 65",
       [](v1::MeasurementSpec* s) {
         s->mutable_power_iteration()->set_top_k(65);
       },
       "power_iteration.top_k must be in [1, 64], got 65"},
      {"power tolerance 1",
       [](v1::MeasurementSpec* s) {
         s->mutable_power_iteration()->set_relative_tolerance(1);
       },
       "power_iteration.relative_tolerance"},
      {"power iterations 0",
       [](v1::MeasurementSpec* s) {
         s->mutable_power_iteration()->set_max_iterations(0);
       },
       "power_iteration.max_iterations"},
      {"slice of zero points",
       [](v1::MeasurementSpec* s) { s->mutable_loss_slice()->set_points(0); },
       "loss_slice.points must be in [1, 10000], got 0"},
      {"inverted slice",
       [](v1::MeasurementSpec* s) {
         s->mutable_loss_slice()->set_t_min(1);
         s->mutable_loss_slice()->set_t_max(-1);
       },
       "loss_slice.t_min must be finite and below t_max"},
      {"slice Lanczos tolerance",
       [](v1::MeasurementSpec* s) {
         s->mutable_loss_slice()->mutable_lanczos()->set_relative_tolerance(2);
       },
       "loss_slice.lanczos.relative_tolerance"},
      {"empty plan", [](v1::MeasurementSpec* s) { s->mutable_plan(); },
       "plan must set at least one measurement"},
      {"bad member of a plan",
       [](v1::MeasurementSpec* s) {
         s->mutable_plan()->mutable_spectral_density()->set_grid_points(1);
       },
       "plan.spectral_density.grid_points"},
      {"empty block prefix",
       [](v1::MeasurementSpec* s) {
         s->mutable_block()->add_prefixes("");
         s->mutable_sharpness();
       },
       "block.prefixes[0] must not be empty"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::MeasurementSpec spec;
    c.set(&spec);
    absl::Status status = ToCoreRequest(spec).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
  }
  // One point needs no interval.
  v1::MeasurementSpec one_point;
  one_point.mutable_loss_slice()->set_points(1);
  one_point.mutable_loss_slice()->set_t_min(0.5);
  one_point.mutable_loss_slice()->set_t_max(0.5);
  EXPECT_TRUE(ToCoreRequest(one_point).ok());
}

// Plans the proto cannot express (a kind twice) reach the engine's API
// directly; a nested plan cannot be written (core::Method has no plan).
TEST(ValidateRequestTest, PlansNameEachKindOnce) {
  core::MeasurementRequest request;
  request.Add<core::HessianTraceMethod>();
  request.Add<core::HessianTraceMethod>();
  EXPECT_THAT(std::string(core::ValidateRequest(request, "plan").message()),
              HasSubstr("plan names hessian_trace more than once"));
  request.methods.clear();
  EXPECT_EQ(core::ValidateRequest(request).code(),
            absl::StatusCode::kInvalidArgument);
  request.Add<core::SharpnessMethod>();
  request.Add<core::SpectralDensityMethod>();
  EXPECT_TRUE(core::ValidateRequest(request).ok());
  request.methods.clear();
  request.Add<core::ExactHessianMethod>().options.max_parameters = 0;
  EXPECT_THAT(std::string(core::ValidateRequest(request, "plan").message()),
              HasSubstr("plan.exact_hessian.max_parameters"));
}

TEST(SpecConversionTest, KindNamesAreTheFieldNames) {
  v1::MeasurementSpec spec;
  EXPECT_EQ(KindName(spec), "unspecified");
  spec.mutable_spectral_density();
  EXPECT_EQ(KindName(spec), "spectral_density");
  spec.mutable_hutchpp();
  EXPECT_EQ(KindName(spec), "hutchpp");
  spec.mutable_adaptive_trace();
  EXPECT_EQ(KindName(spec), "adaptive_trace");
  spec.mutable_trace_h3();
  EXPECT_EQ(KindName(spec), "trace_h3");
  spec.mutable_loss_expansion();
  EXPECT_EQ(KindName(spec), "loss_expansion");
  spec.mutable_exact_hessian();
  EXPECT_EQ(KindName(spec), "exact_hessian");
  spec.mutable_power_iteration();
  EXPECT_EQ(KindName(spec), "power_iteration");
  spec.mutable_loss_slice();
  EXPECT_EQ(KindName(spec), "loss_slice");
  spec.mutable_plan();
  EXPECT_EQ(KindName(spec), "plan");
  spec.mutable_hessian_trace();
  EXPECT_EQ(KindName(spec), "hessian_trace");
}

// A core result with every kind's result set, as a plan of all kinds makes.
core::MeasurementResult EveryResult() {
  core::MeasurementResult r;
  core::SharpnessMethod sharpness;
  sharpness.result.top = {{5.0, 1e-7, true}};
  sharpness.result.iterations = 9;
  r.methods.push_back(sharpness);
  core::HessianTraceMethod trace;
  trace.result = {42.0, 0.5, 12, "target_relative_error"};
  r.methods.push_back(trace);
  core::SpectralDensityMethod density;
  density.result.runs = {{{-1.0, 2.0}, {0.25, 0.75}, 2, true, {0.5, 0.5},
                          {1.5, 1e-9}}};
  density.result.density.grid = {-1.0, 0.0, 2.0};
  density.result.density.density = {0.1, 0.2, 0.3};
  density.result.density.sigma = 0.03;
  density.result.density.sigma_rule = "0.01 x spread 3";
  density.result.estimates = {{"x", 1.25, 2.5, 0.1}};
  density.result.log_threshold = 1e-6;
  density.result.threshold_rule = "t = sqrt(eps) * 2";
  density.result.rank_lower = 1.5;
  density.result.rank_upper = 2;
  density.result.rank_unreliable = true;
  density.result.rank_warning = "not resolved";
  r.methods.push_back(density);
  core::HutchppMethod hutchpp;
  hutchpp.result = {41.0, 0.2, 40.0, 1.0, 5, 7, 17, "max_hvps"};
  r.methods.push_back(hutchpp);
  core::AdaptiveTraceMethod adaptive;
  adaptive.result = {43.0, 0.3, "hutchinson", "predicted: hutchinson 80",
                     0,    90,  98,           "target_standard_error",
                     60.0, 0.01};
  r.methods.push_back(adaptive);
  core::TraceCubedMethod cubed;
  cubed.result = {900.0, 9.0, 20, "max_probes"};
  r.methods.push_back(cubed);
  core::LossExpansionMethod expansion;
  expansion.result.gradient_norm_squared = 2;
  expansion.result.trace_cubed = {800.0, 8.0, 10, "max_probes"};
  expansion.result.noise_term = 0.5;
  expansion.result.total = -0.25;
  expansion.result.total_standard_error = 0.01;
  r.methods.push_back(expansion);
  core::ExactHessianMethod exact;
  exact.result.eigenvalues = {-1.0, 3.0};
  exact.result.rank = 2;
  exact.result.rank_rule = "eps rule";
  exact.result.negative = 1;
  exact.result.positive = 1;
  exact.result.condition_number = 3;
  exact.result.matrix = {-1, 0, 0, 3};
  exact.result.noise_scale = 2e-7;
  exact.result.worst_case_tolerance = 4e-4;
  exact.result.worst_case_rank = 1;
  exact.result.rank_gap_decades = 0.25;
  exact.result.rank_at_tenth_tolerance = 3;
  exact.result.rank_at_tenfold_tolerance = 1;
  exact.result.rank_clear_cut = false;
  exact.result.rank_warning = "rank 2 is not clear-cut";
  r.methods.push_back(exact);
  core::PowerIterationMethod power;
  power.result.pairs = {{3.0, 1e-8, 25, true}};
  power.result.converged = true;
  r.methods.push_back(power);
  core::LossSliceMethod slice;
  slice.result.t = {-1, 0, 1};
  slice.result.loss = {1.5, 0.5, 1.5};
  slice.result.direction = "top eigenvector";
  slice.result.eigenvalue = 2;
  slice.result.direction_curvature = 2;
  r.methods.push_back(slice);
  r.op = core::CurvatureOperator::kGgn;
  r.block_parameters = {"fc0.weight", "fc0.bias"};
  r.shared = {"hessian_trace reused the SLQ start vectors"};
  r.graphs_retained = true;
  r.hvp_graph = "hvp_graph: eager (no device graphs on cpu)";
  return r;
}

// The methods of EveryResult() of the one kind named `name`.
core::MeasurementResult OnlyKind(const std::string& name) {
  core::MeasurementResult r = EveryResult();
  std::vector<core::Method> one;
  for (const core::Method& method : r.methods) {
    if (core::MethodName(method) == name) one.push_back(method);
  }
  r.methods = one;
  return r;
}

// Checks the proto results against EveryResult().
template <typename Holder>
void ExpectEveryResult(const Holder& h) {
  EXPECT_DOUBLE_EQ(h.sharpness().sharpness(), 5.0);
  EXPECT_EQ(h.hessian_trace().probes(), 12);
  ASSERT_EQ(h.spectral_density().runs_size(), 1);
  EXPECT_THAT(h.spectral_density().runs(0).weights(), ElementsAre(0.25, 0.75));
  EXPECT_TRUE(h.spectral_density().runs(0).invariant());
  EXPECT_THAT(h.spectral_density().density(), ElementsAre(0.1, 0.2, 0.3));
  EXPECT_EQ(h.spectral_density().sigma_rule(), "0.01 x spread 3");
  EXPECT_DOUBLE_EQ(h.spectral_density().estimates(0).trace(), 2.5);
  EXPECT_THAT(h.spectral_density().runs(0).alphas(), ElementsAre(0.5, 0.5));
  EXPECT_THAT(h.spectral_density().runs(0).betas(), ElementsAre(1.5, 1e-9));
  EXPECT_EQ(h.spectral_density().threshold_rule(), "t = sqrt(eps) * 2");
  EXPECT_DOUBLE_EQ(h.spectral_density().rank_lower(), 1.5);
  EXPECT_DOUBLE_EQ(h.spectral_density().rank_upper(), 2);
  EXPECT_TRUE(h.spectral_density().rank_unreliable());
  EXPECT_EQ(h.spectral_density().rank_warning(), "not resolved");
  EXPECT_DOUBLE_EQ(h.hutchpp().low_rank_trace(), 40.0);
  EXPECT_EQ(h.hutchpp().sketch_size(), 5);
  EXPECT_EQ(h.hutchpp().stop_reason(), "max_hvps");
  EXPECT_DOUBLE_EQ(h.adaptive_trace().trace(), 43.0);
  EXPECT_DOUBLE_EQ(h.adaptive_trace().standard_error(), 0.3);
  EXPECT_EQ(h.adaptive_trace().method(), "hutchinson");
  EXPECT_EQ(h.adaptive_trace().decision(), "predicted: hutchinson 80");
  EXPECT_EQ(h.adaptive_trace().sketch_size(), 0);
  EXPECT_EQ(h.adaptive_trace().probes(), 90);
  EXPECT_EQ(h.adaptive_trace().hvps(), 98);
  EXPECT_EQ(h.adaptive_trace().stop_reason(), "target_standard_error");
  EXPECT_DOUBLE_EQ(h.adaptive_trace().frobenius_norm_squared(), 60.0);
  EXPECT_DOUBLE_EQ(h.adaptive_trace().sketch_frobenius_fraction(), 0.01);
  EXPECT_DOUBLE_EQ(h.trace_h3().trace(), 900.0);
  EXPECT_DOUBLE_EQ(h.loss_expansion().trace_h3().trace(), 800.0);
  EXPECT_DOUBLE_EQ(h.loss_expansion().total(), -0.25);
  EXPECT_DOUBLE_EQ(h.loss_expansion().noise_term(), 0.5);
  EXPECT_THAT(h.exact_hessian().eigenvalues(), ElementsAre(-1.0, 3.0));
  EXPECT_EQ(h.exact_hessian().rank(), 2);
  EXPECT_THAT(h.exact_hessian().matrix(), ElementsAre(-1, 0, 0, 3));
  EXPECT_EQ(h.power_iteration().pairs(0).iterations(), 25);
  EXPECT_THAT(h.loss_slice().loss(), ElementsAre(1.5, 0.5, 1.5));
  EXPECT_EQ(h.loss_slice().direction(), "top eigenvector");
}

TEST(SpecConversionTest, EveryKindsResultIsWrittenToItsField) {
  for (const std::function<void(v1::MeasurementSpec*)>& set :
       std::vector<std::function<void(v1::MeasurementSpec*)>>{
           [](v1::MeasurementSpec* s) { s->mutable_spectral_density(); },
           [](v1::MeasurementSpec* s) { s->mutable_hutchpp(); },
           [](v1::MeasurementSpec* s) { s->mutable_adaptive_trace(); },
           [](v1::MeasurementSpec* s) { s->mutable_trace_h3(); },
           [](v1::MeasurementSpec* s) { s->mutable_loss_expansion(); },
           [](v1::MeasurementSpec* s) { s->mutable_exact_hessian(); },
           [](v1::MeasurementSpec* s) { s->mutable_power_iteration(); },
           [](v1::MeasurementSpec* s) { s->mutable_loss_slice(); }}) {
    v1::Measurement m;
    set(m.mutable_spec());
    SCOPED_TRACE(KindName(m.spec()));
    ApplyResult(OnlyKind(KindName(m.spec())), &m);
    // The result oneof holds the field named as the kind.
    const google::protobuf::FieldDescriptor* field =
        m.GetReflection()->GetOneofFieldDescriptor(
            m, v1::Measurement::descriptor()->FindOneofByName("result"));
    ASSERT_NE(field, nullptr);
    EXPECT_EQ(field->name(), KindName(m.spec()));
  }
  v1::Measurement m;
  m.mutable_spec()->mutable_exact_hessian();
  ApplyResult(OnlyKind("exact_hessian"), &m);
  EXPECT_THAT(m.exact_hessian().eigenvalues(), ElementsAre(-1.0, 3.0));
  EXPECT_EQ(m.exact_hessian().rank_rule(), "eps rule");
  // The rank's noise, the worst-case rule and the cut's clarity.
  EXPECT_DOUBLE_EQ(m.exact_hessian().noise_scale(), 2e-7);
  EXPECT_DOUBLE_EQ(m.exact_hessian().worst_case_tolerance(), 4e-4);
  EXPECT_EQ(m.exact_hessian().worst_case_rank(), 1);
  EXPECT_DOUBLE_EQ(m.exact_hessian().rank_gap_decades(), 0.25);
  EXPECT_EQ(m.exact_hessian().rank_at_tenth_tolerance(), 3);
  EXPECT_EQ(m.exact_hessian().rank_at_tenfold_tolerance(), 1);
  ASSERT_TRUE(m.exact_hessian().has_rank_clear_cut());
  EXPECT_FALSE(m.exact_hessian().rank_clear_cut());
  EXPECT_EQ(m.exact_hessian().rank_warning(), "rank 2 is not clear-cut");
  EXPECT_DOUBLE_EQ(m.exact_hessian().condition_number(), 3);
  EXPECT_EQ(m.diagnostics().operator_(), v1::OPERATOR_GGN);
  EXPECT_THAT(m.diagnostics().block_parameters(),
              ElementsAre("fc0.weight", "fc0.bias"));
  EXPECT_TRUE(m.diagnostics().graphs_retained());
  EXPECT_EQ(m.diagnostics().hvp_graph(),
            "hvp_graph: eager (no device graphs on cpu)");
}

TEST(SpecConversionTest, PlanResultHoldsWhatThePlanAskedFor) {
  v1::Measurement m;
  v1::MeasurementPlanSpec* plan = m.mutable_spec()->mutable_plan();
  plan->mutable_sharpness();
  plan->mutable_hessian_trace();
  plan->mutable_spectral_density();
  plan->mutable_hutchpp();
  plan->mutable_adaptive_trace();
  plan->mutable_trace_h3();
  plan->mutable_loss_expansion();
  plan->mutable_exact_hessian();
  plan->mutable_power_iteration();
  plan->mutable_loss_slice();
  core::MeasurementResult result = EveryResult();
  ApplyResult(result, &m);
  ASSERT_TRUE(m.has_plan());
  ExpectEveryResult(m.plan());
  EXPECT_THAT(m.diagnostics().shared(),
              ElementsAre("hessian_trace reused the SLQ start vectors"));

  // A plan that asked for two kinds holds two results, nothing else.
  v1::Measurement two;
  two.mutable_spec()->mutable_plan()->mutable_spectral_density();
  two.mutable_spec()->mutable_plan()->mutable_trace_h3();
  ApplyResult(result, &two);
  EXPECT_TRUE(two.plan().has_spectral_density());
  EXPECT_TRUE(two.plan().has_trace_h3());
  EXPECT_FALSE(two.plan().has_sharpness());
  EXPECT_FALSE(two.plan().has_exact_hessian());

  // Through the wire format and back.
  v1::Measurement parsed;
  ASSERT_TRUE(parsed.ParseFromString(m.SerializeAsString()));
  ExpectEveryResult(parsed.plan());
}

}  // namespace
}  // namespace curvd::server

// The engine running every measurement kind, alone and as a plan, on the
// Hessian or the GGN of a parameter block: each checked against the algorithm
// called directly on a float64 CPU reference objective, or a closed form.
#include "core/measurements/measurement_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/api/engine.h"
#include "core/data/model.h"
#include "core/data/shard.h"
#include "core/estimators/hutchinson.h"
#include "core/estimators/hutchpp.h"
#include "core/estimators/power_iteration.h"
#include "core/estimators/slq.h"
#include "core/estimators/trace_cubed.h"
#include "core/measurements/exact_hessian.h"
#include "core/measurements/loss_expansion.h"
#include "core/measurements/loss_slice.h"
#include "core/objective/objective.h"
#include "tests/core/engine_sources.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::EngineDeviceTest;
using ::curvd::core::testing::ExplicitMatrix;
using ::curvd::core::testing::GaussianRegression;
using ::curvd::core::testing::Of;
using ::curvd::core::testing::ZooMlp;
using ::testing::Contains;
using ::testing::HasSubstr;

const std::vector<int64_t> kMlpWidths = {4, 16, 2};
constexpr int64_t kMlpParameters = 4 * 16 + 16 + 16 * 2 + 2;
// A linear model with bias: its MSE loss is exactly quadratic.
const std::vector<int64_t> kLinearWidths = {4, 2};

ModelSource Mlp() { return ZooMlp(kMlpWidths, "zoo:mlp-4-16-2-tanh"); }
ModelSource Linear() { return ZooMlp(kLinearWidths, "zoo:linear-4-2"); }

// Small float64 budgets for every kind: the options each test starts from.
struct Budgets {
  LanczosOptions lanczos;
  TraceOptions trace;
  SlqOptions density;
  HutchppOptions hutchpp;
  TraceOptions trace_cubed;
  LossExpansionOptions loss_expansion;
  ExactHessianOptions exact_hessian;
  PowerIterationOptions power_iteration;
  LossSliceOptions loss_slice;
};

Budgets Small() {
  Budgets b;
  b.lanczos.top_k = 1;
  b.lanczos.max_iterations = 200;
  b.lanczos.relative_tolerance = 1e-10;
  b.trace.min_probes = 20;
  b.trace.max_probes = 20;
  b.trace.target_relative_error = 0;
  b.trace.seed = 4;
  b.density.runs = 5;
  b.density.steps = 10;
  b.density.seed = 4;
  b.hutchpp.max_hvps = 30;
  b.hutchpp.seed = 5;
  b.trace_cubed = b.trace;
  b.loss_expansion = {0.1, 2.0, 50.0, 100.0, b.trace};
  b.power_iteration.top_k = 2;
  b.power_iteration.seed = 6;
  b.loss_slice.points = 9;
  b.loss_slice.t_min = -2;
  b.loss_slice.t_max = 2;
  b.loss_slice.lanczos = b.lanczos;
  return b;
}

void Configure(const Budgets& b, SharpnessMethod* m) { m->options = b.lanczos; }
void Configure(const Budgets& b, HessianTraceMethod* m) {
  m->options = b.trace;
}
void Configure(const Budgets& b, SpectralDensityMethod* m) {
  m->options = b.density;
}
void Configure(const Budgets& b, HutchppMethod* m) { m->options = b.hutchpp; }
void Configure(const Budgets& b, TraceCubedMethod* m) {
  m->options = b.trace_cubed;
}
void Configure(const Budgets& b, LossExpansionMethod* m) {
  m->options = b.loss_expansion;
}
void Configure(const Budgets& b, ExactHessianMethod* m) {
  m->options = b.exact_hessian;
}
void Configure(const Budgets& b, PowerIterationMethod* m) {
  m->options = b.power_iteration;
}
void Configure(const Budgets& b, LossSliceMethod* m) {
  m->options = b.loss_slice;
}

// A float64 MSE request running the methods M..., each with its options from
// `b`: one method is a single kind, several a plan.
template <typename... M>
MeasurementRequest Request(const Budgets& b = Small()) {
  MeasurementRequest request;
  request.objective.loss = LossFunction::kMse;
  request.objective.precision = Precision::kFloat64;
  (Configure(b, &request.Add<M>()), ...);
  return request;
}

// The model torch seed `seed` builds from `source`, float64 on the CPU, and
// its objective over the shard: what the engine is checked against.
class Reference {
 public:
  Reference(const ModelSource& source, uint64_t seed,
            const ParameterBlock& block = {}) {
    torch::manual_seed(seed);
    model_ = LoadModel(source).value();
    model_->To(torch::kCPU, torch::kFloat64);
    const Shard shard = LoadShard(GaussianRegression()).value();
    objective_ = std::make_unique<Objective>(
        Objective::Create(model_.get(), shard.inputs.to(torch::kFloat64),
                          shard.targets.to(torch::kFloat64), LossFunction::kMse,
                          0, block)
            .value());
  }

  Objective& objective() { return *objective_; }
  int64_t size() const { return objective_->num_parameters(); }
  torch::TensorOptions options() const { return objective_->vector_options(); }
  LinearOperator Hessian() {
    return [this](const torch::Tensor& v) { return objective_->Hvp(v); };
  }
  LinearOperator Ggn() {
    return [this](const torch::Tensor& v) { return objective_->Ggnvp(v); };
  }

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<Objective> objective_;
};

double Relative(double a, double b) {
  return std::abs(a - b) / std::max(std::abs(b), 1e-300);
}

const SpectralEstimate& Estimate(const SlqResult& result,
                                 const std::string& function) {
  for (const SpectralEstimate& estimate : result.estimates) {
    if (estimate.function == function) return estimate;
  }
  ADD_FAILURE() << "no estimate of " << function;
  static const SpectralEstimate kNone;
  return kNone;
}

class MeasurementPlanTest : public EngineDeviceTest {};

// Each kind alone equals its algorithm called directly on the reference
// objective with the same options: the same probes and start vectors on every
// device, so agreement is to rounding.
TEST_P(MeasurementPlanTest, EachKindMatchesItsAlgorithmCalledDirectly) {
  Reference reference(Mlp(), 1);
  const Budgets base = Small();
  const Progress none;

  auto density = Measure(Request<SpectralDensityMethod>(), Mlp(), 1);
  ASSERT_TRUE(density.ok()) << density.status();
  auto direct_density =
      StochasticLanczosQuadrature(reference.Hessian(), reference.size(),
                                  reference.options(), base.density, none);
  ASSERT_TRUE(direct_density.ok()) << direct_density.status();
  for (const char* f : {"x", "x^2", "x^3"}) {
    EXPECT_LT(Relative(Estimate(Of<SpectralDensityMethod>(density), f).trace,
                       Estimate(*direct_density, f).trace),
              1e-9)
        << f;
  }
  EXPECT_EQ(density->hvps, direct_density->hvps);
  EXPECT_EQ(density->methods.size(), 1u);
  EXPECT_TRUE(density->shared.empty());

  auto hutchpp = Measure(Request<HutchppMethod>(), Mlp(), 1);
  ASSERT_TRUE(hutchpp.ok()) << hutchpp.status();
  auto direct_hutchpp = HutchPlusPlus(reference.Hessian(), reference.size(),
                                      reference.options(), base.hutchpp, none);
  ASSERT_TRUE(direct_hutchpp.ok()) << direct_hutchpp.status();
  EXPECT_LT(Relative(Of<HutchppMethod>(hutchpp).trace, direct_hutchpp->trace), 1e-9);
  EXPECT_EQ(hutchpp->hvps, direct_hutchpp->hvps);

  auto cubed = Measure(Request<TraceCubedMethod>(), Mlp(), 1);
  ASSERT_TRUE(cubed.ok()) << cubed.status();
  auto direct_cubed = TraceCubed(reference.Hessian(), reference.size(),
                                 reference.options(), base.trace_cubed, none);
  ASSERT_TRUE(direct_cubed.ok()) << direct_cubed.status();
  EXPECT_LT(Relative(Of<TraceCubedMethod>(cubed).trace, direct_cubed->trace), 1e-9);
  EXPECT_EQ(Of<TraceCubedMethod>(cubed).probes, 20);
  EXPECT_EQ(cubed->hvps, 40);

  auto power = Measure(Request<PowerIterationMethod>(), Mlp(), 1);
  ASSERT_TRUE(power.ok()) << power.status();
  auto direct_power =
      PowerIteration(reference.Hessian(), reference.size(), reference.options(),
                     base.power_iteration, none);
  ASSERT_TRUE(direct_power.ok()) << direct_power.status();
  ASSERT_EQ(Of<PowerIterationMethod>(power).pairs.size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_LT(Relative(Of<PowerIterationMethod>(power).pairs[i].value,
                       direct_power->pairs[i].value),
              1e-6)
        << i;
  }

  // The exact Hessian against the explicit matrix of unit-vector products.
  auto exact = Measure(Request<ExactHessianMethod>(), Mlp(), 1);
  ASSERT_TRUE(exact.ok()) << exact.status();
  const torch::Tensor eigenvalues = torch::linalg_eigvalsh(ExplicitMatrix(
      reference.Hessian(), reference.size(), reference.options()));
  ASSERT_EQ(Of<ExactHessianMethod>(exact).eigenvalues.size(), kMlpParameters);
  const double top = eigenvalues[-1].item<double>();
  for (int64_t i = 0; i < kMlpParameters; ++i) {
    EXPECT_NEAR(Of<ExactHessianMethod>(exact).eigenvalues[i],
                eigenvalues[i].item<double>(), 1e-10 * top)
        << i;
  }
  EXPECT_EQ(exact->hvps, kMlpParameters);
  EXPECT_EQ(exact->num_parameters, kMlpParameters);
  EXPECT_EQ(exact->op, CurvatureOperator::kHessian);
  EXPECT_TRUE(exact->block_parameters.empty());
}

TEST_P(MeasurementPlanTest, ExactHessianOverItsCapIsInvalidArgument) {
  Budgets budgets = Small();
  budgets.exact_hessian.max_parameters = kMlpParameters - 1;
  const absl::Status status =
      Measure(Request<ExactHessianMethod>(budgets), Mlp(), 2).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  budgets.exact_hessian.max_parameters = kMlpParameters;
  EXPECT_TRUE(Measure(Request<ExactHessianMethod>(budgets), Mlp(), 2).ok());
}

// VALIDATION.md: tr(H) and tr(H^3) from SLQ's Rademacher start vectors are
// the Hutchinson estimates on the same probes; a plan uses them as the first
// probes of hessian_trace and trace_h3 and takes fewer products.
TEST_P(MeasurementPlanTest, DensityStartVectorsAreTheFirstTraceProbes) {
  Reference reference(Mlp(), 3);
  const Budgets budgets = Small();
  const MeasurementRequest plan =
      Request<HessianTraceMethod, TraceCubedMethod, SpectralDensityMethod>(
          budgets);
  auto shared = Measure(plan, Mlp(), 3);
  ASSERT_TRUE(shared.ok()) << shared.status();
  const Progress none;
  auto hutchinson = Hutchinson(reference.Hessian(), reference.size(),
                               reference.options(), budgets.trace, none);
  ASSERT_TRUE(hutchinson.ok()) << hutchinson.status();
  auto cubed = TraceCubed(reference.Hessian(), reference.size(),
                          reference.options(), budgets.trace_cubed, none);
  ASSERT_TRUE(cubed.ok()) << cubed.status();
  EXPECT_EQ(Of<HessianTraceMethod>(shared).probes, 20);
  EXPECT_LT(Relative(Of<HessianTraceMethod>(shared).trace, hutchinson->trace), 1e-9);
  EXPECT_LT(Relative(Of<HessianTraceMethod>(shared).standard_error, hutchinson->standard_error),
            1e-7);
  EXPECT_EQ(Of<TraceCubedMethod>(shared).probes, 20);
  EXPECT_LT(Relative(Of<TraceCubedMethod>(shared).trace, cubed->trace), 1e-9);
  EXPECT_LT(Relative(Of<TraceCubedMethod>(shared).standard_error, cubed->standard_error),
            1e-7);

  // Each alone: 5 x 10 Lanczos steps, 20 and 2 x 20 products; the plan saves
  // one product per start vector for tr(H) and two for tr(H^3).
  int64_t separate = 0;
  for (const Method& method : plan.methods) {
    MeasurementRequest alone = plan;
    alone.methods = {method};
    auto result = Measure(alone, Mlp(), 3);
    ASSERT_TRUE(result.ok()) << result.status();
    separate += result->hvps;
  }
  EXPECT_EQ(separate, 50 + 20 + 40);
  EXPECT_EQ(shared->hvps, separate - 5 - 2 * 5);
  EXPECT_THAT(shared->shared,
              Contains(HasSubstr("hessian_trace reused 5 of the 5")));
  EXPECT_THAT(shared->shared,
              Contains(HasSubstr("trace_h3 reused 5 of the 5")));
  EXPECT_THAT(shared->shared, Contains(HasSubstr("the 3 methods shared")));

  // With as many probes as start vectors, trace_h3 is SLQ's x^3 trace and
  // takes no product of its own.
  Budgets five = budgets;
  five.trace_cubed.min_probes = five.trace_cubed.max_probes = 5;
  const MeasurementRequest only_slq =
      Request<SpectralDensityMethod, TraceCubedMethod>(five);
  auto from_slq = Measure(only_slq, Mlp(), 3);
  ASSERT_TRUE(from_slq.ok()) << from_slq.status();
  const SpectralEstimate& x3 = Estimate(Of<SpectralDensityMethod>(from_slq), "x^3");
  EXPECT_LT(Relative(Of<TraceCubedMethod>(from_slq).trace, x3.trace), 1e-12);
  EXPECT_LT(Relative(Of<TraceCubedMethod>(from_slq).standard_error, x3.standard_error),
            1e-9);
  EXPECT_EQ(from_slq->hvps, 50);
  auto direct = TraceCubed(reference.Hessian(), reference.size(),
                           reference.options(), five.trace_cubed, none);
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_LT(Relative(Of<TraceCubedMethod>(from_slq).trace, direct->trace), 1e-9);

  // Another seed, or Gaussian probes: nothing to share.
  Budgets other_seed = budgets;
  other_seed.trace.seed = other_seed.trace_cubed.seed = 99;
  auto unshared = Measure(
      Request<HessianTraceMethod, TraceCubedMethod, SpectralDensityMethod>(
          other_seed),
      Mlp(), 3);
  ASSERT_TRUE(unshared.ok()) << unshared.status();
  EXPECT_EQ(unshared->hvps, separate);
  EXPECT_THAT(unshared->shared, ::testing::Not(Contains(HasSubstr("reused"))));
}

// The terms against a float64 computation: g by autograd, g^T H g and tr(H^3)
// from the explicit Hessian of the reference.
TEST_P(MeasurementPlanTest, LossExpansionMatchesExplicitHessian) {
  Reference reference(Mlp(), 4);
  Budgets budgets = Small();
  budgets.loss_expansion.trace_cubed.min_probes = 200;
  budgets.loss_expansion.trace_cubed.max_probes = 200;
  auto result = Measure(Request<LossExpansionMethod>(budgets), Mlp(), 4);
  ASSERT_TRUE(result.ok()) << result.status();
  const LossExpansionResult& expansion = Of<LossExpansionMethod>(result);

  const torch::Tensor h = ExplicitMatrix(reference.Hessian(), reference.size(),
                                         reference.options());
  const torch::Tensor g = reference.objective().Gradient().value();
  const double g_norm_squared = g.dot(g).item<double>();
  const double g_h_g = g.dot(h.mv(g)).item<double>();
  const double exact_h3 = torch::linalg_eigvalsh(h).pow(3).sum().item<double>();
  EXPECT_LT(Relative(expansion.gradient_norm_squared, g_norm_squared), 1e-10);
  EXPECT_LT(Relative(expansion.gradient_curvature, g_h_g), 1e-9);
  EXPECT_EQ(expansion.trace_cubed.probes, 200);
  EXPECT_LE(std::abs(expansion.trace_cubed.trace - exact_h3),
            4 * expansion.trace_cubed.standard_error);

  const LossExpansionOptions& o = budgets.loss_expansion;
  const double sigma_squared = 1 / (o.h0 * o.ess);
  const double coefficient = o.rho * o.rho * sigma_squared / (2 * o.num_steps);
  EXPECT_DOUBLE_EQ(expansion.sigma_squared, sigma_squared);
  EXPECT_NEAR(expansion.first_order_term, -o.rho * g_norm_squared,
              1e-10 * o.rho * g_norm_squared);
  EXPECT_NEAR(expansion.second_order_term, o.rho * o.rho / 2 * g_h_g,
              1e-9 * std::abs(o.rho * o.rho / 2 * g_h_g));
  EXPECT_DOUBLE_EQ(expansion.noise_term,
                   coefficient * expansion.trace_cubed.trace);
  EXPECT_DOUBLE_EQ(expansion.noise_term_standard_error,
                   coefficient * expansion.trace_cubed.standard_error);
  EXPECT_DOUBLE_EQ(expansion.total, expansion.first_order_term +
                                        expansion.second_order_term +
                                        expansion.noise_term);
  EXPECT_EQ(expansion.total_standard_error,
            expansion.noise_term_standard_error);
  EXPECT_EQ(result->hvps, 1 + 2 * 200);

  // With trace_h3 of the same options in the plan, its estimate is reused.
  budgets.trace_cubed = budgets.loss_expansion.trace_cubed;
  auto shared = Measure(
      Request<LossExpansionMethod, TraceCubedMethod>(budgets), Mlp(), 4);
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_EQ(Of<LossExpansionMethod>(shared).trace_cubed.trace,
            Of<TraceCubedMethod>(shared).trace);
  EXPECT_LT(Relative(Of<LossExpansionMethod>(shared).total, expansion.total), 1e-9);
  EXPECT_EQ(shared->hvps, result->hvps);
  EXPECT_THAT(shared->shared,
              Contains(HasSubstr("loss_expansion took tr(H^3) from trace_h3")));
}

TEST_P(MeasurementPlanTest, LossExpansionRejectsNonPositiveNumbers) {
  Budgets budgets = Small();
  budgets.loss_expansion.ess = 0;
  EXPECT_EQ(Measure(Request<LossExpansionMethod>(budgets), Mlp(), 5)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// The MSE loss of a linear model is quadratic: along a unit v it is exactly
// L(w) + t g.v + t^2 / 2 v^T H v.
TEST_P(MeasurementPlanTest, LossSliceOfAQuadraticIsTheExactParabola) {
  Reference reference(Linear(), 6);
  Budgets budgets = Small();
  budgets.loss_slice.direction = SliceDirection::kRandom;
  budgets.loss_slice.seed = 7;
  auto result = Measure(Request<LossSliceMethod>(budgets), Linear(), 6);
  ASSERT_TRUE(result.ok()) << result.status();
  const LossSliceResult& slice = Of<LossSliceMethod>(result);

  at::Generator generator = SeededGenerator(7);
  torch::Tensor v = RandomProbe(reference.size(), ProbeDistribution::kGaussian,
                                generator, reference.options());
  v = v / v.norm();
  const double loss = reference.objective().Loss().value();
  const double slope =
      reference.objective().Gradient().value().dot(v).item<double>();
  const double curvature = v.dot(reference.Hessian()(v).value()).item<double>();
  EXPECT_LT(Relative(slice.direction_curvature, curvature), 1e-10);
  EXPECT_THAT(slice.direction, HasSubstr("seed 7"));
  ASSERT_EQ(slice.t.size(), 9);
  ASSERT_EQ(slice.loss.size(), 9);
  for (int i = 0; i < 9; ++i) {
    const double t = -2 + 0.5 * i;
    EXPECT_DOUBLE_EQ(slice.t[i], t);
    EXPECT_NEAR(slice.loss[i], loss + t * slope + t * t / 2 * curvature,
                1e-10 * loss)
        << t;
  }
  EXPECT_EQ(result->hvps, 1);

  // Along the top eigenvector the even part is t^2 / 2 lambda_max.
  budgets.loss_slice.direction = SliceDirection::kTopEigenvector;
  auto top = Measure(Request<LossSliceMethod>(budgets), Linear(), 6);
  ASSERT_TRUE(top.ok()) << top.status();
  const double lambda = torch::linalg_eigvalsh(ExplicitMatrix(
      reference.Hessian(), reference.size(), reference.options()))[-1]
                            .item<double>();
  EXPECT_LT(Relative(Of<LossSliceMethod>(top).eigenvalue, lambda), 1e-9);
  EXPECT_LT(Relative(Of<LossSliceMethod>(top).direction_curvature, lambda), 1e-9);
  EXPECT_THAT(Of<LossSliceMethod>(top).direction, HasSubstr("top eigenvector"));
  for (int i = 0; i < 4; ++i) {
    const double t = Of<LossSliceMethod>(top).t[8 - i];
    const double even =
        (Of<LossSliceMethod>(top).loss[8 - i] + Of<LossSliceMethod>(top).loss[i]) / 2 - loss;
    EXPECT_NEAR(even, t * t / 2 * lambda, 1e-9 * loss) << t;
  }

  // One point: t_min.
  budgets.loss_slice.points = 1;
  auto one = Measure(Request<LossSliceMethod>(budgets), Linear(), 6);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(Of<LossSliceMethod>(one).t, std::vector<double>{-2});
}

// With sharpness in the plan, the slice's top eigenvector is that run's: one
// Lanczos run instead of two.
TEST_P(MeasurementPlanTest, LossSliceTakesTheSharpnessEigenvector) {
  const MeasurementRequest plan = Request<LossSliceMethod, SharpnessMethod>();
  auto shared = Measure(plan, Mlp(), 8);
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_EQ(Of<LossSliceMethod>(shared).eigenvalue, Of<SharpnessMethod>(shared).top[0].value);
  EXPECT_LT(Relative(Of<LossSliceMethod>(shared).direction_curvature,
                     Of<SharpnessMethod>(shared).top[0].value),
            1e-8);
  EXPECT_EQ(shared->hvps, Of<SharpnessMethod>(shared).iterations + 1);
  EXPECT_THAT(shared->shared,
              Contains(HasSubstr("loss_slice took its direction")));
  EXPECT_THAT(Of<LossSliceMethod>(shared).direction,
              HasSubstr("the sharpness Lanczos run"));

  auto slice = Measure(Request<LossSliceMethod>(), Mlp(), 8);
  ASSERT_TRUE(slice.ok()) << slice.status();
  EXPECT_GT(slice->hvps, 2);
  EXPECT_LT(
      Relative(Of<LossSliceMethod>(slice).eigenvalue, Of<LossSliceMethod>(shared).eigenvalue),
      1e-8);
  for (size_t i = 0; i < Of<LossSliceMethod>(slice).loss.size(); ++i) {
    // Eigenvectors have a sign: the slice is the same up to t -> -t.
    const double loss = Of<LossSliceMethod>(slice).loss[i];
    const double mirrored =
        Of<LossSliceMethod>(slice).loss[Of<LossSliceMethod>(slice).loss.size() - 1 - i];
    const double expected = Of<LossSliceMethod>(shared).loss[i];
    EXPECT_TRUE(Relative(loss, expected) < 1e-8 ||
                Relative(mirrored, expected) < 1e-8)
        << i;
  }
}

// The GGN of the tanh MLP (not its Hessian) and the Hessian of a block of
// parameters, through the engine.
TEST_P(MeasurementPlanTest, GgnAndParameterBlocks) {
  Reference reference(Mlp(), 9);
  MeasurementRequest request = Request<ExactHessianMethod>();
  request.op = CurvatureOperator::kGgn;
  auto ggn = Measure(request, Mlp(), 9);
  ASSERT_TRUE(ggn.ok()) << ggn.status();
  const torch::Tensor ggn_eigenvalues = torch::linalg_eigvalsh(
      ExplicitMatrix(reference.Ggn(), reference.size(), reference.options()));
  const double top = ggn_eigenvalues[-1].item<double>();
  ASSERT_EQ(Of<ExactHessianMethod>(ggn).eigenvalues.size(), kMlpParameters);
  for (int64_t i = 0; i < kMlpParameters; ++i) {
    EXPECT_NEAR(Of<ExactHessianMethod>(ggn).eigenvalues[i],
                ggn_eigenvalues[i].item<double>(), 1e-10 * top)
        << i;
  }
  // MSE is convex in the outputs: the GGN is positive semi-definite.
  EXPECT_GT(Of<ExactHessianMethod>(ggn).eigenvalues[0], -1e-10 * top);
  EXPECT_EQ(ggn->op, CurvatureOperator::kGgn);

  // The block fc1 (16 x 2 weights, 2 biases) is the last 34 coordinates:
  // H_BB is the trailing corner of the full Hessian.
  MeasurementRequest block = Request<ExactHessianMethod>();
  block.block.prefixes = {"fc1."};
  auto restricted = Measure(block, Mlp(), 9);
  ASSERT_TRUE(restricted.ok()) << restricted.status();
  EXPECT_EQ(restricted->block_parameters,
            (std::vector<std::string>{"fc1.weight", "fc1.bias"}));
  EXPECT_EQ(restricted->num_parameters, 34);
  const torch::Tensor h = ExplicitMatrix(reference.Hessian(), reference.size(),
                                         reference.options());
  const torch::Tensor corner =
      h.slice(0, kMlpParameters - 34).slice(1, kMlpParameters - 34);
  const torch::Tensor corner_eigenvalues = torch::linalg_eigvalsh(corner);
  ASSERT_EQ(Of<ExactHessianMethod>(restricted).eigenvalues.size(), 34);
  const double corner_top = corner_eigenvalues[-1].item<double>();
  for (int64_t i = 0; i < 34; ++i) {
    EXPECT_NEAR(Of<ExactHessianMethod>(restricted).eigenvalues[i],
                corner_eigenvalues[i].item<double>(), 1e-10 * corner_top)
        << i;
  }

  // A plan on the GGN of a block: every method on the same operator.
  MeasurementRequest plan = Request<SharpnessMethod, HessianTraceMethod>();
  plan.op = CurvatureOperator::kGgn;
  plan.block.names = {"fc0.weight"};
  Reference block_reference(Mlp(), 9, plan.block);
  auto both = Measure(plan, Mlp(), 9);
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(both->num_parameters, 64);
  EXPECT_EQ(both->block_parameters, std::vector<std::string>{"fc0.weight"});
  auto direct = Hutchinson(block_reference.Ggn(), block_reference.size(),
                           block_reference.options(), Small().trace,
                           Progress());
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_LT(Relative(Of<HessianTraceMethod>(both).trace, direct->trace), 1e-9);
  const double block_top = torch::linalg_eigvalsh(ExplicitMatrix(
      block_reference.Ggn(), block_reference.size(),
      block_reference.options()))[-1]
                               .item<double>();
  EXPECT_LT(Relative(Of<SharpnessMethod>(both).top[0].value, block_top), 1e-8);

  MeasurementRequest nothing = block;
  nothing.block.prefixes = {"no_such_layer."};
  EXPECT_EQ(Measure(nothing, Mlp(), 9).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(MeasurementPlanTest, ProgressCoversThePlanAndCancellationStopsIt) {
  const MeasurementRequest plan =
      Request<SharpnessMethod, HessianTraceMethod, LossSliceMethod>();
  std::vector<double> fractions;
  std::vector<std::string> messages;
  Progress progress;
  progress.report = [&](double fraction, const std::string& message) {
    fractions.push_back(fraction);
    messages.push_back(message);
  };
  auto result = Measure(plan, Mlp(), 10, progress);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_FALSE(fractions.empty());
  for (size_t i = 1; i < fractions.size(); ++i) {
    EXPECT_LE(fractions[i - 1], fractions[i]) << messages[i];
  }
  EXPECT_GE(fractions.front(), 0);
  EXPECT_LT(fractions.back(), 1);
  EXPECT_GE(fractions.back(), 2.0 / 3);
  EXPECT_THAT(messages, Contains(HasSubstr("hessian_trace: ")));
  EXPECT_THAT(messages, Contains(HasSubstr("loss_slice: ")));

  // Cancelled in the second method.
  int calls = 0;
  progress.report = nullptr;
  progress.cancelled = [&calls] { return ++calls > 5; };
  EXPECT_EQ(Measure(plan, Mlp(), 10, progress).status().code(),
            absl::StatusCode::kCancelled);

  const MeasurementRequest twice = Request<SharpnessMethod, SharpnessMethod>();
  EXPECT_EQ(Measure(twice, Mlp(), 10).status().code(),
            absl::StatusCode::kInvalidArgument);
}

CURVD_INSTANTIATE_DEVICE_TEST(MeasurementPlanTest);

}  // namespace
}  // namespace curvd::core

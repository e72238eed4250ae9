// MeasureLlc against singular learning theory (../shared/VALIDATION.md):
// lambda_hat on models whose learning coefficient lambda is known.
//
// lambda_hat = n_beta (E[L] - L(w*)) is lambda only in the limit: at finite
// settings it carries the biases of the exact SGLD expectation of llc_test.cc,
// per quadratic mode of curvature h (a = n_beta h + gamma)
//   n_beta h / (2 a (1 - epsilon a / 4)) = (1/2)(1 - gamma / a)(1 + epsilon a / 4 + ...),
// i.e. -gamma / (n_beta h) from the localisation and +epsilon a / 4 from the
// step, and on singular models a finite-temperature term that decays only as
// a power (or the log) of n_beta / gamma^{degree/2}. Each test states the
// settings that keep these below its tolerance.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "core/data/model.h"
#include "core/measurements/llc.h"
#include "tests/core/llc_models.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeepLinearNetwork;
using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::MinimallySingularModel;
using ::curvd::core::testing::MonomialModel;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::WhitenedInputs;

class LlcTheoryTest : public DeviceTest {
 public:
  // lambda_hat of `model` (moved to the device in float64) on inputs and
  // targets (moved too), with MSE.
  LlcResult Measure(Model& model, const torch::Tensor& inputs,
                    const torch::Tensor& targets, const LlcOptions& llc) {
    model.To(device(), torch::kFloat64);
    Objective objective =
        Objective::Create(&model, inputs.to(options()), targets.to(options()),
                          LossFunction::kMse, /*micro_batch_size=*/4096)
            .value();
    absl::StatusOr<LlcResult> result = MeasureLlc(objective, llc, {});
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return {};
    EXPECT_EQ(result->chains_diverged, 0);
    std::printf("lambda_hat %.4f +- %.4f (n_beta %g, r_hat %.3f)\n",
                result->llc_mean, result->llc_standard_error, result->n_beta,
                result->r_hat.value_or(0));
    return *result;
  }
};

// The faithful variants, labelled slow (tests/core/CMakeLists.txt): run them
// with `ctest --test-dir build -L slow` or
// `build/bin/llc_theory_test --gtest_filter='*SlowTest*/cpu'`.
class LlcTheorySlowTest : public LlcTheoryTest {};

LlcOptions Sgld(double step_size, double n_beta, double gamma) {
  LlcOptions o;
  o.sampler = LlcSampler::kSgld;
  o.step_size = step_size;
  o.n_beta_convention = NBetaConvention::kGiven;
  o.n_beta = n_beta;
  o.localization = gamma;
  o.seed = 12;
  return o;
}

// The seed study's experiment: d = 10,000 parameters of which the loss sees
// r (through a fixed random rotation of the inputs), H = 2 I_r, lambda = r / 2.
// n_beta = 1000, gamma = 20: the localisation bias gamma / (2 n_beta) = -1%;
// epsilon = 2e-5: the step's epsilon a / 4 = +1%; minibatches of half the
// shard (N = 2r samples, at least 64) add about epsilon n_beta (r + 1) / (4B)
// <= +0.5%. The burn-in is several relaxation times 1 / (epsilon a) = 25
// steps; the draws' relative spread sqrt(2 / r) per draw sets chains x draws
// for a standard error under 4% of r / 2 (the 10% is 2.5 of them).
void ExpectHalfTheRank(LlcTheoryTest& test, int64_t r, int chains, int burn_in,
                       int draws) {
  constexpr int64_t kParameters = 10000;
  const int64_t n = std::max<int64_t>(2 * r, 64);
  MinimallySingularModel model(kParameters, r, 5);
  const torch::Tensor x = WhitenedInputs(n, r, 6);
  const torch::Tensor y = model.Forward(x).detach();  // L(w*) = 0
  LlcOptions o = Sgld(2e-5, 1000, 20);
  o.chains = chains;
  o.burn_in = burn_in;
  o.draws = draws;
  o.batch_size = n / 2;
  const LlcResult result = test.Measure(model, x, y, o);
  EXPECT_NEAR(result.llc_mean, r / 2.0, 0.1 * r / 2.0) << "r = " << r;
  EXPECT_LT(result.llc_standard_error, 0.04 * r / 2.0) << "r = " << r;
}

TEST_P(LlcTheoryTest, MinimallySingularRank10GivesHalfTheRank) {
  ExpectHalfTheRank(*this, 10, 10, 200, 1500);
}

TEST_P(LlcTheoryTest, MinimallySingularRank100GivesHalfTheRank) {
  ExpectHalfTheRank(*this, 100, 8, 300, 500);
}

// Bounded: 6 relaxation times of burn-in (the transient's deficit e^{-6}),
// two chains.
TEST_P(LlcTheoryTest, MinimallySingularRank1000GivesHalfTheRankShortRun) {
  ExpectHalfTheRank(*this, 1000, 2, 150, 100);
}

TEST_P(LlcTheorySlowTest, MinimallySingularRank1000GivesHalfTheRank) {
  ExpectHalfTheRank(*this, 1000, 4, 300, 200);
}

// The exact expectation at finite temperature of the potential K(v) =
// v_1^{2 p_1} v_2^{2 p_2} under exp(-tau K(v) - |v|^2 / 2): tau E[K], by the
// trapezoid rule in log v on the positive quadrant (the integrand is even).
// With v = sqrt(gamma) w it is the lambda_hat a perfect sampler gives for
// n_beta c prod w_i^{2 p_i} localised with gamma, tau = n_beta c /
// gamma^{p_1 + p_2}.
double ExactMonomialLambdaHat(const std::vector<int64_t>& powers, double tau) {
  constexpr int kNodes = 2000;
  const double lo = std::log(1e-8);
  const double h = (std::log(8.0) - lo) / (kNodes - 1);
  std::vector<double> v(kNodes), weight(kNodes);
  for (int i = 0; i < kNodes; ++i) {
    v[i] = std::exp(lo + i * h);
    weight[i] = v[i] * h * (i == 0 || i + 1 == kNodes ? 0.5 : 1) *
                std::exp(-v[i] * v[i] / 2);
  }
  double z = 0;
  double e = 0;
  for (int i = 0; i < kNodes; ++i) {
    const double a = std::pow(v[i], 2.0 * powers[0]);
    for (int j = 0; j < kNodes; ++j) {
      const double k = a * std::pow(v[j], 2.0 * powers[1]);
      const double q = weight[i] * weight[j] * std::exp(-tau * k);
      z += q;
      e += q * k;
    }
  }
  return tau * e / z;
}

// f(x; w) = x prod w_i^{p_i}, x ~ N(0, 2^2), y = 0.25 N(0, 1), w* = 0. The
// noise is made orthogonal to x in the sample and x scaled to mean x^2 = 4,
// so that L(w) - L(0) = 4 prod w_i^{2 p_i} exactly: the population K(w).
LlcResult MeasureMonomial(LlcTheoryTest& test, std::vector<int64_t> powers,
                          const LlcOptions& options) {
  constexpr int64_t kSamples = 256;
  torch::Tensor x = SeededRandn({kSamples, 1}, 8);
  x = x * (2 / x.pow(2).mean().sqrt());
  torch::Tensor y = 0.25 * SeededRandn({kSamples, 1}, 9);
  y = y - x * (x * y).sum() / (x * x).sum();
  MonomialModel model(std::move(powers));
  return test.Measure(model, x, y, options);
}

// tau = 4 n_beta / gamma^{p_1 + p_2} of ExactMonomialLambdaHat.
double MonomialTau(const std::vector<int64_t>& powers, const LlcOptions& o) {
  return 4 * o.n_beta / std::pow(o.localization, powers[0] + powers[1]);
}

// At tau = 1000 (n_beta = 250, gamma = 1) the exact finite-temperature
// lambda_hat is 0.390, 0.225, 0.165 and 0.151 for the powers below, against
// lambda = 1/2, 1/4, 1/4, 1/6: the multiplicity-2 cases [1,1] and [2,2]
// approach lambda only as 1 / log tau (still 12% and 22% low at tau = 1e6),
// so no sound setting reaches 15% of lambda for them; SGLD is checked here
// against the finite-temperature value, within 3 standard errors. The step
// trades two errors: the curvature across a ridge, 2 tau w^{2p} far along an
// axis, makes epsilon a ~ 1 at |w| ~ 1.5 with epsilon = 1e-4 (no chain
// diverged), while the directions along the ridges move only by the prior,
// at epsilon gamma / 2 a step: at 2e-5 they stay unmixed and [1,1] read
// 0.33 against 0.39.
void ExpectFiniteTemperatureMonomial(LlcTheoryTest& test,
                                     std::vector<int64_t> powers) {
  LlcOptions o = Sgld(1e-4, 250, 1);
  o.chains = 32;
  o.burn_in = 2000;
  o.draws = 3000;
  o.batch_size = 256;
  const double exact = ExactMonomialLambdaHat(powers, MonomialTau(powers, o));
  const LlcResult result = MeasureMonomial(test, powers, o);
  std::printf("exact at finite temperature %.4f\n", exact);
  EXPECT_NEAR(result.llc_mean, exact, 3 * result.llc_standard_error);
}

TEST_P(LlcTheoryTest, Monomial11MatchesItsFiniteTemperatureExpectation) {
  ExpectFiniteTemperatureMonomial(*this, {1, 1});
}
TEST_P(LlcTheoryTest, Monomial12MatchesItsFiniteTemperatureExpectation) {
  ExpectFiniteTemperatureMonomial(*this, {1, 2});
}
TEST_P(LlcTheoryTest, Monomial22MatchesItsFiniteTemperatureExpectation) {
  ExpectFiniteTemperatureMonomial(*this, {2, 2});
}
TEST_P(LlcTheoryTest, Monomial13MatchesItsFiniteTemperatureExpectation) {
  ExpectFiniteTemperatureMonomial(*this, {1, 3});
}

// [1,2] and [1,3] within 15% of lambda: tau = 4000 (n_beta = 1000, gamma =
// 1), where the exact value is about 7% low, epsilon scaled down with the
// stiffness (x 4) and the chains lengthened to match.
void ExpectMonomialLambda(LlcTheoryTest& test, std::vector<int64_t> powers,
                          double lambda) {
  LlcOptions o = Sgld(2.5e-5, 1000, 1);
  o.chains = 64;
  o.burn_in = 8000;
  o.draws = 12000;
  o.batch_size = 256;
  const LlcResult result = MeasureMonomial(test, powers, o);
  std::printf("exact at finite temperature %.4f, lambda %.4f\n",
              ExactMonomialLambdaHat(powers, MonomialTau(powers, o)), lambda);
  EXPECT_NEAR(result.llc_mean, lambda, 0.15 * lambda);
}

TEST_P(LlcTheorySlowTest, Monomial12IsAQuarter) {
  ExpectMonomialLambda(*this, {1, 2}, 0.25);
}
TEST_P(LlcTheorySlowTest, Monomial13IsASixth) {
  ExpectMonomialLambda(*this, {1, 3}, 1.0 / 6);
}

// The exact expectation at finite temperature for the deep linear network
// of widths H_0, 3, H_2 at w* = 0 with L(W) = ||W_2 W_1||_F^2 / H_2,
// localised with gamma: integrating W_2 out leaves
//   lambda_hat = E[(H_2 / 2) sum_i s mu_i / (1 + s mu_i)],
// mu the eigenvalues of U U^T (U = sqrt(gamma) W_1, a Wishart matrix of H_0
// degrees of freedom) weighted by prod_i (1 + s mu_i)^{-H_2 / 2}, s = 2 n_beta
// / (H_2 gamma^2): a 3-dimensional integral over the Wishart eigenvalue
// density prod mu_i^{(H_0 - 4) / 2} e^{-mu_i / 2} prod_{i<j} |mu_i - mu_j|,
// by the trapezoid rule in log mu.
double ExactDeepLinearLambdaHat(int64_t h0, int64_t h2, double s) {
  constexpr int kNodes = 120;
  const double lo = std::log(1e-10);
  const double h = (std::log(60.0) - lo) / (kNodes - 1);
  std::vector<double> mu(kNodes), weight(kNodes), term(kNodes);
  for (int i = 0; i < kNodes; ++i) {
    mu[i] = std::exp(lo + i * h);
    weight[i] = mu[i] * h * (i == 0 || i + 1 == kNodes ? 0.5 : 1) *
                std::pow(mu[i], (h0 - 4) / 2.0) * std::exp(-mu[i] / 2) *
                std::pow(1 + s * mu[i], -h2 / 2.0);
    term[i] = h2 / 2.0 * s * mu[i] / (1 + s * mu[i]);
  }
  double z = 0;
  double e = 0;
  for (int i = 0; i < kNodes; ++i) {
    for (int j = 0; j < i; ++j) {
      for (int k = 0; k < j; ++k) {
        const double q = weight[i] * weight[j] * weight[k] * (mu[i] - mu[j]) *
                         (mu[i] - mu[k]) * (mu[j] - mu[k]);
        z += q;
        e += q * (term[i] + term[j] + term[k]);
      }
    }
  }
  return e / z;
}

// The exact values tend to lambda: the quadrature itself against theory.
TEST(LlcTheoryQuadratureTest, FiniteTemperatureValuesApproachLambda) {
  EXPECT_NEAR(ExactMonomialLambdaHat({1, 2}, 1e8), 0.25, 0.005);
  EXPECT_NEAR(ExactMonomialLambdaHat({1, 3}, 1e8), 1.0 / 6, 0.003);
  EXPECT_NEAR(ExactDeepLinearLambdaHat(5, 5, 1e6), 6.5, 0.15);
}

// Widths 5, 3, 5 at w* = 0 with targets 0 (the true product 0, r = 0):
// Aoyagi's lambda = 13/2. Whitened inputs make L(W) = ||W_2 W_1||_F^2 / 5.
// n_beta = 500, gamma = 1: s = 200, where the exact finite-temperature value
// is 6.08 (-6.5%; s = 10, 100, 1000 give 5.39, 5.98, 6.22). epsilon = 5e-5
// keeps epsilon a below 0.2 for a layer whose partner has prior-sized
// weights (a <= (2 n_beta / 5) ||W||^2 ~ 3000); the flat directions mix at
// epsilon gamma / 2 a step, slowly, but lambda_hat depends on them only
// through log s.
TEST_P(LlcTheoryTest, DeepLinearNetworkMatchesAoyagi) {
  constexpr int64_t kSamples = 128;
  DeepLinearNetwork model({5, 3, 5}, 0, 1);
  const torch::Tensor x = WhitenedInputs(kSamples, 5, 10);
  const torch::Tensor y = torch::zeros({kSamples, 5}, torch::kFloat64);
  LlcOptions o = Sgld(5e-5, 500, 1);
  o.chains = 24;
  o.burn_in = 3000;
  o.draws = 3000;
  o.batch_size = kSamples;
  const LlcResult result = Measure(model, x, y, o);
  const double exact = ExactDeepLinearLambdaHat(
      5, 5, 2 * o.n_beta / (5 * std::pow(o.localization, 2)));
  std::printf("exact at finite temperature %.4f\n", exact);
  EXPECT_NEAR(result.llc_mean, 6.5, 0.15 * 6.5);
  EXPECT_NEAR(result.llc_mean, exact, 3 * result.llc_standard_error);
}

// Rescaling a ReLU layer (weights and bias) by alpha and the next layer's
// weights by 1 / alpha leaves the function, hence lambda, unchanged: the two
// lambda_hat agree within 3 combined standard errors. w* fits its own
// outputs (L(w*) = 0). alpha = 2 scales curvatures by up to alpha^2 = 4, so
// epsilon = 1e-5 keeps epsilon a small for the stiffest rescaled mode, and
// gamma = 10 against n_beta = 1000 keeps the localisation, which is not
// invariant (it weighs layer k's directions alpha^2 times more after the
// rescaling), a small part of every stiff mode's a.
TEST_P(LlcTheoryTest, RescalingAdjacentReluLayersLeavesLambdaUnchanged) {
  constexpr int64_t kSamples = 256;
  torch::manual_seed(3);
  ModelSource source;
  source.kind = ModelSource::Kind::kZoo;
  source.zoo.layer_widths = {3, 6, 1};
  source.zoo.activation = "relu";
  std::unique_ptr<Model> model = LoadModel(source, torch::kFloat64).value();
  const torch::Tensor x = SeededRandn({kSamples, 3}, 11);
  const torch::Tensor y = model->Forward(x).detach();  // L(w*) = 0
  LlcOptions o = Sgld(1e-5, 1000, 10);
  o.chains = 16;
  o.burn_in = 2000;
  o.draws = 2000;
  o.batch_size = kSamples;
  const LlcResult at = Measure(*model, x, y, o);
  constexpr double kAlpha = 2;
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> p = model->Parameters();  // fc0.w, fc0.b, fc1.w
    p[0].mul_(kAlpha);
    p[1].mul_(kAlpha);
    p[2].div_(kAlpha);
  }
  ASSERT_LT((model->Forward(x.to(options())).cpu() - y).abs().max().item<double>(),
            1e-12);
  const LlcResult rescaled = Measure(*model, x, y, o);
  EXPECT_NEAR(at.llc_mean, rescaled.llc_mean,
              3 * std::hypot(at.llc_standard_error,
                             rescaled.llc_standard_error));
}

CURVD_INSTANTIATE_DEVICE_TEST(LlcTheoryTest);
CURVD_INSTANTIATE_DEVICE_TEST(LlcTheorySlowTest);

}  // namespace
}  // namespace curvd::core

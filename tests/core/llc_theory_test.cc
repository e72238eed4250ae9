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
// so SGLD is checked here against the finite-temperature value, within 3
// standard errors, and only [1,1] against lambda, at tau = 1e6 in a slow
// test (Monomial11IsAHalfAtHighTemperatureRatio below). The step
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

// [1,1] within 15% of lambda = 1/2 and within 3 standard errors of its
// exact value, 0.4375 at tau = 1e6 (n_beta = 2.5e5, gamma = 1; 12.5% low,
// so the 15% leaves 2.9%). MALA, exact at any step, with epsilon = 1e-5:
// acceptance 0.92 (0.77 at 4e-5, where 16 x (5000 + 20000) came out 4.4
// standard errors low, 0.409 +- 0.006: chains stuck across the stiff ridges
// far out, 8 tau w^2 ~ 8e6, mix slowly along them; 1e-6 accepts every
// proposal but diffuses 10 times slower). The slow mode is the chains' walk in
// log |w| along the axes, the source of the 1 / log tau deficit: the spread
// across chains did not shrink from 20000 draws to 60000 (0.029, 0.037), so the
// standard error comes from many chains (64, the server's cap). Measured
// (burn-in + draws, mean +- SE, user CPU time; R-hat 1.002 to 1.003 in every
// run): epsilon = 1e-5, 16 chains x (5000 + 20000) 0.4296 +- 0.0071; 16 x
// (20000 + 60000) 0.4309 +- 0.0092; 64 x (30000 + 30000), the settings below,
// 0.4316 +- 0.0054, ESS 37000 of the capped traces, 21 s; 64 x (60000 + 60000)
// 0.4273 +- 0.0044, 37 s; epsilon = 3e-6 (acceptance 0.98), 64 x (60000 +
// 60000) 0.4326 +- 0.0053. Every run passes both bounds, but each sits 1 to 2.3
// standard errors below the exact value (the chains share their start at the
// origin, the corner the walk leaves slowly), and the 15% bound is only 1.2 of
// them below the result: a fragile test, kept slow. [2,2] would need tau ~ 5e8
// for its exact value to come within 15% of 1/4: not attempted.
TEST_P(LlcTheorySlowTest, Monomial11IsAHalfAtHighTemperatureRatio) {
  LlcOptions o = Sgld(1e-5, 2.5e5, 1);
  o.sampler = LlcSampler::kMala;
  o.chains = 64;
  o.burn_in = 30000;
  o.draws = 30000;
  o.batch_size = 256;
  const double exact = ExactMonomialLambdaHat({1, 1}, MonomialTau({1, 1}, o));
  const LlcResult result = MeasureMonomial(*this, {1, 1}, o);
  std::printf("exact at finite temperature %.4f, acceptance %.3f\n", exact,
              result.acceptance_rate.value_or(0));
  EXPECT_NEAR(result.llc_mean, 0.5, 0.15 * 0.5);
  EXPECT_NEAR(result.llc_mean, exact, 3 * result.llc_standard_error);
  EXPECT_LT(result.r_hat.value_or(2), kLlcMaxRHat);
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

// lambda_hat of the deep linear network of widths h0, h1, h2 at a w* whose
// product has rank r: seeded Gaussian weights on the first r hidden units,
// 0 on the others (r = 0: w* = 0). Whitened inputs and targets f(x; w*) make
// L(W) - L(w*) = ||W_2 W_1 - W*_2 W*_1||_F^2 / h2; 128 samples, full batch.
LlcResult MeasureDeepLinear(LlcTheoryTest& test, int64_t h0, int64_t h1,
                            int64_t h2, int64_t r, const LlcOptions& options) {
  constexpr int64_t kSamples = 128;
  DeepLinearNetwork model({h0, h1, h2}, 1, 1);
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> w = model.Parameters();  // [h1, h0], [h2, h1]
    w[0].narrow(0, r, h1 - r).zero_();
    w[1].narrow(1, r, h1 - r).zero_();
  }
  const torch::Tensor x = WhitenedInputs(kSamples, h0, 10);
  const torch::Tensor y = model.Forward(x).detach();  // L(w*) = 0
  LlcOptions o = options;
  o.batch_size = kSamples;
  return test.Measure(model, x, y, o);
}

// s = 2 n_beta / (h2 gamma^2) of ExactDeepLinearLambdaHat.
double DeepLinearS(int64_t h2, const LlcOptions& o) {
  return 2 * o.n_beta / (h2 * std::pow(o.localization, 2));
}

// Widths 5, 3, 5 at w* = 0 (the true product 0, r = 0): Aoyagi's lambda =
// 13/2. n_beta = 500, gamma = 1: s = 200, where the exact finite-temperature
// value is 6.08 (-6.5%; s = 10, 100, 1000 give 5.39, 5.98, 6.22). epsilon =
// 5e-5 keeps epsilon a below 0.2 for a layer whose partner has prior-sized
// weights (a <= (2 n_beta / 5) ||W||^2 ~ 3000); the flat directions mix at
// epsilon gamma / 2 a step, slowly, but lambda_hat depends on them only
// through log s.
TEST_P(LlcTheoryTest, DeepLinearNetworkMatchesAoyagi) {
  LlcOptions o = Sgld(5e-5, 500, 1);
  o.chains = 24;
  o.burn_in = 3000;
  o.draws = 3000;
  const LlcResult result = MeasureDeepLinear(*this, 5, 3, 5, 0, o);
  const double exact = ExactDeepLinearLambdaHat(5, 5, DeepLinearS(5, o));
  std::printf("exact at finite temperature %.4f\n", exact);
  EXPECT_NEAR(result.llc_mean, 6.5, 0.15 * 6.5);
  EXPECT_NEAR(result.llc_mean, exact, 3 * result.llc_standard_error);
}

// Widths 4, 3, 8 at w* = 0: lambda = 6 (Aoyagi with l = 1, S = {3, 4}).
// The wide output layer is the flat one; n_beta = 500, gamma = 1 give s =
// 2 n_beta / 8 = 125, where the exact value is 5.925 (-1.3%). epsilon = 1e-4:
// a <= (2 n_beta / 8) ||W_2||^2 ~ 125 (sqrt 8 + sqrt 3)^2 ~ 2600, epsilon a
// / 4 <= 7% on the stiffest mode and about 2% on a typical one; twice the
// 5, 3, 5 test's step mixes the flat layer twice as fast (12 chains of 6000
// draws after 3000 steps measured 6.03 +- 0.11, R-hat 1.02, ESS 630, where
// 24 chains of 3000 at epsilon = 5e-5 gave R-hat 1.14).
LlcOptions DeepLinear438Options() {
  LlcOptions o = Sgld(1e-4, 500, 1);
  o.chains = 12;
  o.burn_in = 3000;
  o.draws = 6000;
  return o;
}

TEST_P(LlcTheoryTest, DeepLinearNetwork438MatchesAoyagi) {
  const LlcOptions o = DeepLinear438Options();
  const LlcResult result = MeasureDeepLinear(*this, 4, 3, 8, 0, o);
  const double exact = ExactDeepLinearLambdaHat(4, 8, DeepLinearS(8, o));
  std::printf("exact at finite temperature %.4f\n", exact);
  EXPECT_NEAR(result.llc_mean, 6, 0.15 * 6);
  EXPECT_NEAR(result.llc_mean, exact, 3 * result.llc_standard_error);
  EXPECT_LT(result.r_hat.value_or(2), kLlcMaxRHat);
}

// Widths 4, 3, 8 with a true product of rank 1: M = (3, 2, 7), l = 1, S =
// {2, 3}, lambda = (-1 + 12) / 2 + 6 / 2 = 17/2. No quadrature covers w* !=
// 0, so only Aoyagi's value is checked, within 15%; the settings are the
// r = 0 test's, the rank-1 part's curvature (2 n_beta / 8) |W*|^2 being of
// the size the flat layer's prior-sized weights give. Measured 8.58 +- 0.18,
// R-hat 1.04 (8.61 +- 0.14 with another seeded w*).
TEST_P(LlcTheoryTest, DeepLinearNetwork438Rank1MatchesAoyagi) {
  const LlcResult result =
      MeasureDeepLinear(*this, 4, 3, 8, 1, DeepLinear438Options());
  EXPECT_NEAR(result.llc_mean, 8.5, 0.15 * 8.5);
  EXPECT_LT(result.r_hat.value_or(2), kLlcMaxRHat);
}

// Rescaling a ReLU layer (weights and bias) by alpha and the next layer's
// weights by 1 / alpha leaves the function, hence lambda, unchanged: the two
// lambda_hat agree within 3 combined standard errors. w* fits its own
// outputs (L(w*) = 0). The localisation is not invariant (it weighs layer
// k's directions alpha^2 times more after the rescaling), so gamma = 10 is
// kept a small part of the stiff modes' a. The flat directions (each hidden
// unit's own rescaling) relax at epsilon gamma / 2 a step: epsilon = 1e-5
// with n_beta = 1000 left them unmixed (R-hat 1.30 and 1.20, ESS 43 of 16
// chains x 2000 draws); n_beta = 300 with epsilon = 3e-4 keeps epsilon
// n_beta h as at 1e-4 and n_beta = 1000 (no chain diverged there, alpha^2 =
// 4 times stiffer modes included) while mixing 30 times faster: R-hat 1.02
// and 1.01 (seed 12; 1.03 and 1.02 at seed 5), ESS 340 and 750, lambda_hat
// 3.80 +- 0.10 and 3.90 +- 0.07, about 5 s each.
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
  LlcOptions o = Sgld(3e-4, 300, 10);
  o.chains = 8;
  o.burn_in = 2000;
  o.draws = 2500;
  o.batch_size = kSamples;
  const LlcResult at = Measure(*model, x, y, o);
  EXPECT_LT(at.r_hat.value_or(2), kLlcMaxRHat);
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
  EXPECT_LT(rescaled.r_hat.value_or(2), kLlcMaxRHat);
  EXPECT_NEAR(at.llc_mean, rescaled.llc_mean,
              3 * std::hypot(at.llc_standard_error,
                             rescaled.llc_standard_error));
}

CURVD_INSTANTIATE_DEVICE_TEST(LlcTheoryTest);
CURVD_INSTANTIATE_DEVICE_TEST(LlcTheorySlowTest);

}  // namespace
}  // namespace curvd::core

// Known answers for the LLC's trace statistics. The small examples' expected
// values were computed independently with numpy (/usr/bin/python3, numpy
// 1.24) from a line-by-line translation of stan-dev/posterior's R .rhat and
// .ess (R/convergence.R, split chains, FFT autocovariance), printed with
// repr(); the long-chain tests use the AR(1) process
// x_t = rho x_{t-1} + e_t, whose integrated autocorrelation time is
// (1 + rho) / (1 - rho).
#include "core/measurements/llc_diagnostics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace curvd::core {
namespace {

// One AR(1) chain started from its stationary distribution (variance 1), plus
// `slope` t; seeded per (seed, chain) so that every test is fixed.
std::vector<double> Ar1(double rho, int draws, uint64_t seed,
                        double slope = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  const double innovation = std::sqrt(1 - rho * rho);
  std::vector<double> x(draws);
  double state = normal(rng);
  for (int t = 0; t < draws; ++t) {
    x[t] = state + slope * t;
    state = rho * state + innovation * normal(rng);
  }
  return x;
}

ChainTraces Ar1Chains(double rho, int chains, int draws, uint64_t seed) {
  ChainTraces traces;
  for (int c = 0; c < chains; ++c) {
    traces.push_back(Ar1(rho, draws, seed * 1000 + c));
  }
  return traces;
}

// Two chains of 16 draws, positively autocorrelated.
const ChainTraces kSmall = {{1, 2, 3, 3, 4, 3, 2, 2, 1, 2, 3, 4, 5, 4, 3, 2},
                            {2, 2, 3, 4, 4, 5, 4, 3, 3, 2, 1, 1, 2, 3, 3, 4}};

TEST(SplitRHatTest, HandComputedTwoByFour) {
  // Halves {1,2} {3,4} {2,3} {4,5}: W = 0.5, the means 1.5 3.5 2.5 4.5 have
  // variance 5/3 = B/h, so R-hat = sqrt((0.5/2 + 5/3) / 0.5) = sqrt(23/6).
  const auto r_hat = SplitRHat({{1, 2, 3, 4}, {2, 3, 4, 5}});
  ASSERT_TRUE(r_hat.has_value());
  EXPECT_NEAR(*r_hat, std::sqrt(23.0 / 6), 1e-14);
  EXPECT_NEAR(*r_hat, 1.957890020745122, 1e-14);  // numpy
}

TEST(SplitRHatTest, MatchesTheNumpyReference) {
  EXPECT_NEAR(*SplitRHat(kSmall), 1.0257487479042617, 1e-13);
}

TEST(SplitRHatTest, DropsTheMiddleDrawAndCutsToTheShortestChain) {
  // 5 draws: the halves are {1,2} and {4,5}, the 3 (or 100) left out; the
  // longer second chain is cut to 5 draws.
  EXPECT_NEAR(*SplitRHat({{1, 2, 100, 3, 4}, {2, 3, -7, 4, 5, 99, 99}}),
              std::sqrt(23.0 / 6), 1e-14);
}

TEST(SplitRHatTest, UnknownWithoutTwoChainsFourDrawsOrWithinVariance) {
  EXPECT_FALSE(SplitRHat({{1, 2, 3, 4, 5, 6}}).has_value());
  EXPECT_FALSE(SplitRHat({{1, 2, 3}, {2, 3, 4}}).has_value());
  EXPECT_FALSE(SplitRHat({{1, 1, 1, 1}, {1, 1, 1, 1}}).has_value());
  // Constant halves at different values: W = 0, unknown rather than infinite.
  EXPECT_FALSE(SplitRHat({{1, 1, 2, 2}, {3, 3, 4, 4}}).has_value());
  EXPECT_FALSE(SplitRHat({{1, 2, 3, std::numeric_limits<double>::quiet_NaN()},
                          {2, 3, 4, 5}})
                   .has_value());
}

TEST(SplitRHatTest, NearOneForMixedChainsAndLargeForSeparatedOnes) {
  const ChainTraces mixed = Ar1Chains(0.5, 4, 2000, 1);
  EXPECT_LT(*SplitRHat(mixed), 1.01);
  ChainTraces separated = mixed;
  for (double& v : separated[0]) v += 3;
  EXPECT_GT(*SplitRHat(separated), kLlcMaxRHat);
}

TEST(EffectiveSampleSizeTest, MatchesTheNumpyReference) {
  EXPECT_NEAR(*EffectiveSampleSize(kSmall), 16.677572236661057, 1e-11);
  // One chain is split into its two halves.
  EXPECT_NEAR(*EffectiveSampleSize({kSmall[0]}), 9.05050505050505, 1e-11);
}

TEST(EffectiveSampleSizeTest, MonotoneAndEndOfChainCasesMatchTheReference) {
  // Two chains of 20 integers (numpy's default_rng(1), searched for): Geyer's
  // positive sequence runs to Stan's last lag (n - 5 for halves of 10) and
  // the monotone correction lowers a pair.
  const ChainTraces traces = {
      {2, 5, 4, 8, 6, 7, 5, 3, 2, 4, 5, 3, 1, 1, 0, 2, 4, 2, 1, 3},
      {7, 3, 9, 5, 1, 9, 8, 7, 1, 7, 7, 7, 7, 5, 3, 9, 9, 6, 3, 5}};
  EXPECT_NEAR(*EffectiveSampleSize(traces), 11.601644008852354, 1e-11);
  EXPECT_NEAR(*SplitRHat(traces), 1.2263500422919666, 1e-13);
}

TEST(EffectiveSampleSizeTest, IndependentDrawsGiveAboutTheirNumber) {
  // 4 x 5000 iid normal draws; over seeds 1..20 the ratio to 20000 was 0.949
  // to 1.018, so the tolerance is 7%.
  const double ess = *EffectiveSampleSize(Ar1Chains(0, 4, 5000, 7));
  EXPECT_NEAR(ess / 20000, 1, 0.07);
}

TEST(EffectiveSampleSizeTest, Ar1GivesNTimesOneMinusRhoOverOnePlusRho) {
  // 4 x 20000 draws: n (1 - rho) / (1 + rho) is 26667 for rho = 0.5 and 4211
  // for rho = 0.9; over seeds 1..20 the ratios were 0.947 to 1.044 and 0.926
  // to 1.072, so the tolerances are 7% and 10%.
  const int n = 4 * 20000;
  const double ess_half = *EffectiveSampleSize(Ar1Chains(0.5, 4, 20000, 3));
  EXPECT_NEAR(ess_half / (n * 0.5 / 1.5), 1, 0.07);
  const double ess_high = *EffectiveSampleSize(Ar1Chains(0.9, 4, 20000, 3));
  EXPECT_NEAR(ess_high / (n * 0.1 / 1.9), 1, 0.10);
}

TEST(EffectiveSampleSizeTest, UnknownForShortConstantOrNonFiniteTraces) {
  EXPECT_FALSE(EffectiveSampleSize({}).has_value());
  EXPECT_FALSE(
      EffectiveSampleSize({std::vector<double>(kLlcMinEssDraws - 1, 1.0)})
          .has_value());
  EXPECT_TRUE(EffectiveSampleSize({Ar1(0, kLlcMinEssDraws, 1)}).has_value());
  EXPECT_FALSE(EffectiveSampleSize({std::vector<double>(50, 2.0)}).has_value());
  std::vector<double> with_inf = Ar1(0, 50, 1);
  with_inf[10] = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(EffectiveSampleSize({with_inf}).has_value());
}

TEST(StillRisingTest, FlatAr1TracesRiseAboutAsOftenAsZAboveTwoImplies) {
  // 1000 stationary AR(1) traces (rho = 0.5, 400 draws: parts of 100). For a
  // normal z the rate is 1 - Phi(2) = 2.3%; the ESS of a 100-draw part is
  // itself estimated (Geyer's sum runs low on short parts), so the rate
  // measured here is 3.5% (35 of 1000; 2.3% for iid traces, 4.5% for rho 0.5
  // and 100 draws, 12% for rho 0.9 and 100 draws, over 4000 seeds). Bounds:
  // 1.5% to 6%, about 3.5 binomial standard errors either side.
  int rising = 0;
  for (uint64_t seed = 1; seed <= 1000; ++seed) {
    const auto test = StillRising(Ar1(0.5, 400, seed));
    ASSERT_TRUE(test.has_value());
    rising += test->rising;
  }
  EXPECT_GE(rising, 15);
  EXPECT_LE(rising, 60);
}

TEST(StillRisingTest, ALinearTrendRises) {
  // A slope of 0.05 per draw on AR(1) noise (rho 0.5, sd 1) adds 5 between
  // the parts' centres. The trend inside each part reads as autocorrelation
  // and shrinks its ESS, so z saturates near 3 (the smallest z over seeds
  // 1..1000 was 1.94, 2 of 1000 not rising); seeds 1..100 all rise.
  int rising = 0;
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    rising += StillRising(Ar1(0.5, 400, seed, 0.05))->rising;
  }
  EXPECT_EQ(rising, 100);
  // Falling is not rising.
  const auto falling = StillRising(Ar1(0.5, 400, 5, -0.05));
  EXPECT_FALSE(falling->rising);
  EXPECT_LT(falling->z, -kLlcRiseZThreshold);
}

TEST(StillRisingTest, UsesOnlyTheLastHalf) {
  // A large first half changes nothing: the test reads the last 200 draws.
  std::vector<double> trace = Ar1(0.5, 400, 9);
  const double z = StillRising(trace)->z;
  for (int t = 0; t < 200; ++t) trace[t] += 50 + t;
  EXPECT_DOUBLE_EQ(StillRising(trace)->z, z);
}

TEST(StillRisingTest, HandComputedConstantParts) {
  // The last half of 96 draws is 24 draws alternating 0,2 (mean 1) and 24
  // alternating 3,5 (mean 4). Each part has variance 24/23 and, being
  // antithetic, an ESS at the cap 24 log10 24 = 33.12; z = 3 / sqrt(2 var /
  // ESS).
  std::vector<double> trace(48, 0.0);
  for (int t = 0; t < 24; ++t) trace.push_back(t % 2 == 0 ? 0 : 2);
  for (int t = 0; t < 24; ++t) trace.push_back(t % 2 == 0 ? 3 : 5);
  const double ess = 24 * std::log10(24.0);
  ASSERT_NEAR(*EffectiveSampleSize({{trace.end() - 24, trace.end()}}), ess,
              1e-9);
  const auto test = StillRising(trace);
  ASSERT_TRUE(test.has_value());
  EXPECT_NEAR(test->z, 3 / std::sqrt(2 * (24.0 / 23) / ess), 1e-9);
  EXPECT_TRUE(test->rising);
}

TEST(StillRisingTest, UnknownForShortOrConstantTraces) {
  EXPECT_FALSE(StillRising(Ar1(0.5, 4 * kLlcMinEssDraws - 1, 1)).has_value());
  EXPECT_TRUE(StillRising(Ar1(0.5, 4 * kLlcMinEssDraws, 1)).has_value());
  EXPECT_FALSE(StillRising(std::vector<double>(100, 1.0)).has_value());
}

TEST(DownsampleTest, KeepsEveryStrideThValueFromTheFirst) {
  const std::vector<double> trace = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  DownsampledTrace d = Downsample(trace, 3);  // ceil(10 / 3) = 4
  EXPECT_EQ(d.stride, 4);
  EXPECT_EQ(d.values, (std::vector<double>{0, 4, 8}));
  d = Downsample(trace, 5);
  EXPECT_EQ(d.stride, 2);
  EXPECT_EQ(d.values, (std::vector<double>{0, 2, 4, 6, 8}));
  d = Downsample(trace, 10);
  EXPECT_EQ(d.stride, 1);
  EXPECT_EQ(d.values, trace);
  d = Downsample(trace, 0);  // counts as 1
  EXPECT_EQ(d.stride, 10);
  EXPECT_EQ(d.values, (std::vector<double>{0}));
  d = Downsample({}, 3);
  EXPECT_EQ(d.stride, 1);
  EXPECT_TRUE(d.values.empty());
}

TEST(RunningMeansTest, PrefixMeansAndLambdaHat) {
  EXPECT_EQ(RunningMeans({2, 4, 6, 0}), (std::vector<double>{2, 3, 4, 3}));
  // n_beta 10, L(w*) = 1: 10 (mean - 1).
  EXPECT_EQ(LlcRunningMeans({2, 4, 6, 0}, 10, 1),
            (std::vector<double>{10, 20, 30, 20}));
  EXPECT_TRUE(RunningMeans({}).empty());
}

TEST(SummarizeChainsTest, MeanStdAndStandardError) {
  // {1, 2, 3, 6}: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, std
  // sqrt(14 / 3), standard error that over sqrt(4).
  const LlcChainSummary s = SummarizeChains({1, 2, 3, 6});
  EXPECT_DOUBLE_EQ(s.mean, 3);
  EXPECT_NEAR(s.std, std::sqrt(14.0 / 3), 1e-15);
  EXPECT_NEAR(s.standard_error, std::sqrt(14.0 / 3) / 2, 1e-15);
  const LlcChainSummary one = SummarizeChains({5});
  EXPECT_EQ(one.mean, 5);
  EXPECT_EQ(one.std, 0);
  EXPECT_EQ(one.standard_error, 0);
  EXPECT_EQ(SummarizeChains({}).mean, 0);
}

TEST(StandardErrorTest, EssBasedAndTheLargerOfTheTwo) {
  // numpy: 2 sqrt(var(pooled, ddof=1) / 16.677572236661057).
  const auto ess_se = EssStandardError(kSmall, 2);
  ASSERT_TRUE(ess_se.has_value());
  EXPECT_NEAR(*ess_se, 0.5484258721331378, 1e-12);
  EXPECT_FALSE(EssStandardError({{1, 2, 3}}, 2).has_value());

  LlcChainSummary summary;
  summary.standard_error = 0.3;
  EXPECT_DOUBLE_EQ(LlcStandardError(summary, *ess_se), *ess_se);
  summary.standard_error = 0.9;
  EXPECT_DOUBLE_EQ(LlcStandardError(summary, *ess_se), 0.9);
  EXPECT_DOUBLE_EQ(LlcStandardError(summary, std::nullopt), 0.9);
}

LlcResult HealthyResult() {
  LlcResult result;
  result.llc_mean = 12.5;
  result.initial_loss = 0.25;
  result.chains.resize(4);
  result.r_hat = 1.02;
  result.divergence_threshold = 25;
  return result;
}

TEST(LlcWarningsTest, NoneForAHealthyResult) {
  EXPECT_TRUE(LlcWarnings(HealthyResult()).empty());
  LlcResult mala = HealthyResult();
  mala.acceptance_rate = 0.97;  // high acceptance is not a warning
  EXPECT_TRUE(LlcWarnings(mala).empty());
}

TEST(LlcWarningsTest, OneSentenceWithItsNumbersPerFailedDiagnostic) {
  LlcResult result = HealthyResult();
  result.llc_mean = -0.75;
  result.chains[1].diverged = true;
  result.chains[1].divergence_step = 37;
  result.chains_diverged = 1;
  result.r_hat = 1.32;
  result.chains[0].still_rising = true;
  result.chains[0].rise_z_score = 2.5;
  result.chains[3].still_rising = true;
  result.chains[3].rise_z_score = 3.25;
  result.acceptance_rate = 0.31;
  const std::vector<std::string> w = LlcWarnings(result);
  ASSERT_EQ(w.size(), 5u);
  EXPECT_NE(w[0].find("negative (-0.75)"), std::string::npos) << w[0];
  EXPECT_NE(w[1].find("1 of 4 chains diverged (chain 1 at step 37"),
            std::string::npos)
      << w[1];
  EXPECT_NE(w[1].find("other 3"), std::string::npos) << w[1];
  EXPECT_NE(w[2].find("1.320 > 1.10"), std::string::npos) << w[2];
  EXPECT_NE(w[3].find("chains 0, 3 still rise"), std::string::npos) << w[3];
  EXPECT_NE(w[3].find("z = 2.50, 3.25 > 2"), std::string::npos) << w[3];
  EXPECT_NE(w[4].find("31.0% of its proposals, below 50%"), std::string::npos)
      << w[4];
}

TEST(LlcWarningsTest, RHatAtTheBoundIsNotAWarning) {
  LlcResult result = HealthyResult();
  result.r_hat = kLlcMaxRHat;
  EXPECT_TRUE(LlcWarnings(result).empty());
  result.chains[2].still_rising = true;
  result.chains[2].rise_z_score = 2.1;
  const auto w = LlcWarnings(result);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("chain 2 still rises"), std::string::npos) << w[0];
}

}  // namespace
}  // namespace curvd::core

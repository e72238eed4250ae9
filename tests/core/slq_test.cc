#include "core/estimators/slq.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/estimators/hutchinson.h"
#include "core/estimators/slq_rank.h"
#include "core/estimators/trace_cubed.h"
#include "tests/core/test_matrices.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::MatrixOperator;
using ::curvd::core::testing::MatrixWithSpectrum;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::Trapezoid;

const torch::TensorOptions kCpu64 = torch::TensorOptions(torch::kFloat64);

SlqOptions Runs(int runs, int steps, ProbeDistribution distribution,
                uint64_t seed) {
  SlqOptions options;
  options.runs = runs;
  options.steps = steps;
  options.distribution = distribution;
  options.seed = seed;
  return options;
}

// The unnormalised start vectors z of SLQ's runs, float64 on the CPU.
std::vector<torch::Tensor> StartProbes(int64_t size, const SlqOptions& slq) {
  at::Generator generator = SeededGenerator(slq.seed);
  std::vector<torch::Tensor> probes;
  for (int r = 0; r < slq.runs; ++r) {
    probes.push_back(RandomProbe(size, slq.distribution, generator, kCpu64));
  }
  return probes;
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

// A spectrum in [-1, 1], so that v^T A^k v stays of order 1 for every k.
std::vector<double> UnitSpectrum(int n) {
  std::vector<double> spectrum;
  for (int i = 0; i < n; ++i) {
    spectrum.push_back(std::cos(3.0 * i + 1.0) * (i % 3 == 0 ? 1.0 : 0.6));
  }
  return spectrum;
}

TEST(GaussQuadratureTest, MatchesDenseEighFirstComponents) {
  constexpr int64_t kM = 30;
  const torch::Tensor diagonal = SeededRandn({kM}, 1);
  const torch::Tensor off = SeededRandn({kM - 1}, 2).abs() + 0.1;
  const torch::Tensor dense =
      torch::diag(diagonal) + torch::diag(off, 1) + torch::diag(off, -1);
  auto [values, vectors] = torch::linalg_eigh(dense);
  const std::vector<double> d(diagonal.data_ptr<double>(),
                              diagonal.data_ptr<double>() + kM);
  const std::vector<double> e(off.data_ptr<double>(),
                              off.data_ptr<double>() + kM - 1);
  auto run = GaussQuadrature(d, e);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->nodes.size(), kM);
  EXPECT_EQ(run->steps, kM);
  double total = 0;
  for (int64_t i = 0; i < kM; ++i) {
    EXPECT_NEAR(run->nodes[i], values[i].item<double>(), 1e-13);
    EXPECT_NEAR(run->weights[i], std::pow(vectors[0][i].item<double>(), 2),
                1e-13);
    total += run->weights[i];
  }
  EXPECT_NEAR(total, 1, 1e-14);
  EXPECT_EQ(GaussQuadrature({1, 2}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

class SlqTest : public DeviceTest {};

TEST_P(SlqTest, QuadratureIsExactUpToDegreeTwoStepsMinusOne) {
  constexpr int64_t kSize = 80;
  constexpr int kSteps = 8;
  const torch::Tensor a = MatrixWithSpectrum(UnitSpectrum(kSize), 3);
  for (ProbeDistribution distribution :
       {ProbeDistribution::kRademacher, ProbeDistribution::kGaussian}) {
    const SlqOptions slq = Runs(3, kSteps, distribution, 5);
    auto result = StochasticLanczosQuadrature(
        MatrixOperator(a.to(device())), kSize, options(), slq, Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(result->runs.size(), 3);
    EXPECT_EQ(result->hvps, 3 * kSteps);
    EXPECT_EQ(result->num_parameters, kSize);
    const std::vector<torch::Tensor> probes = StartProbes(kSize, slq);
    for (int r = 0; r < 3; ++r) {
      SCOPED_TRACE("run " + std::to_string(r));
      const SlqRun& run = result->runs[r];
      ASSERT_EQ(run.nodes.size(), kSteps);
      EXPECT_EQ(run.steps, kSteps);
      EXPECT_FALSE(run.invariant);
      double weight_sum = 0;
      for (double w : run.weights) {
        EXPECT_GE(w, 0);
        weight_sum += w;
      }
      EXPECT_NEAR(weight_sum, 1, 1e-13);
      const torch::Tensor v = probes[r] / probes[r].norm();
      torch::Tensor power = v.clone();  // A^k v
      for (int k = 0; k <= 2 * kSteps; ++k) {
        const double exact = v.dot(power).item<double>();
        double quadrature = 0;
        for (int j = 0; j < kSteps; ++j) {
          quadrature += run.weights[j] * std::pow(run.nodes[j], k);
        }
        if (k <= 2 * kSteps - 1) {
          EXPECT_NEAR(quadrature, exact, 1e-12) << "k = " << k;
        } else {
          // Degree 2m is where Gauss quadrature stops being exact: the bound
          // is tight.
          EXPECT_GT(std::abs(quadrature - exact), 1e-9) << "k = " << k;
        }
        power = a.mv(power);
      }
    }
  }
}

TEST_P(SlqTest, DensityIntegratesToOne) {
  constexpr int64_t kSize = 100;
  std::vector<double> spectrum;
  for (int i = 0; i < kSize; ++i)
    spectrum.push_back(i < 5 ? 20.0 - i : 0.01 * i);
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 4).to(device());
  auto result = StochasticLanczosQuadrature(
      MatrixOperator(a), kSize, options(),
      Runs(4, 30, ProbeDistribution::kRademacher, 6), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  const SlqDensity& density = result->density;
  ASSERT_EQ(density.grid.size(), 1000);
  ASSERT_EQ(density.density.size(), 1000);
  EXPECT_GT(density.sigma, 0);
  EXPECT_NE(density.sigma_rule.find("max node - min node"), std::string::npos)
      << density.sigma_rule;
  EXPECT_NEAR(Trapezoid(density.grid, density.density), 1, 1e-6);
  for (double value : density.density) EXPECT_GE(value, 0);

  // Re-broadened from the raw runs with a stated width on a stated grid.
  SlqOptions narrow = Runs(4, 30, ProbeDistribution::kRademacher, 6);
  narrow.sigma = 0.05;
  narrow.grid_min = -2;
  narrow.grid_max = 22;
  narrow.grid_points = 20001;
  auto rebroadened = BroadenedDensity(result->runs, narrow);
  ASSERT_TRUE(rebroadened.ok()) << rebroadened.status();
  EXPECT_EQ(rebroadened->sigma, 0.05);
  EXPECT_NE(rebroadened->sigma_rule.find("as requested"), std::string::npos);
  EXPECT_EQ(rebroadened->grid.front(), -2);
  EXPECT_EQ(rebroadened->grid.back(), 22);
  EXPECT_NEAR(Trapezoid(rebroadened->grid, rebroadened->density), 1, 1e-6);
}

TEST_P(SlqTest, TraceWithinFourStandardErrors) {
  constexpr int64_t kSize = 100;
  std::vector<double> spectrum;
  for (int i = 0; i < kSize; ++i) spectrum.push_back(std::sin(i) + 0.3);
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 8);
  const double exact = a.trace().item<double>();
  const double exact_squares = a.pow(2).sum().item<double>();
  for (uint64_t seed = 0; seed < 5; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto result = StochasticLanczosQuadrature(
        MatrixOperator(a.to(device())), kSize, options(),
        Runs(30, 10, ProbeDistribution::kGaussian, seed), Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    const SpectralEstimate& trace = Estimate(*result, "x");
    EXPECT_GT(trace.standard_error, 0);
    EXPECT_LE(std::abs(trace.trace - exact), 4 * trace.standard_error);
    EXPECT_NEAR(trace.mean * kSize, trace.trace, 1e-12 * kSize);
    const SpectralEstimate& squares = Estimate(*result, "x^2");
    EXPECT_LE(std::abs(squares.trace - exact_squares),
              4 * squares.standard_error);
  }
}

TEST_P(SlqTest, SameProbesAsHutchinsonAndTraceCubed) {
  constexpr int64_t kSize = 60;
  std::vector<double> spectrum;
  for (int i = 0; i < kSize; ++i) spectrum.push_back(std::cos(i) * 2 + 0.5);
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 9).to(device());
  const LinearOperator op = MatrixOperator(a);
  constexpr int kRuns = 20;
  // Rademacher probes have ||z||^2 = P, so P v^T f(A) v = z^T f(A) z exactly:
  // SLQ's traces of x and x^3 are Hutchinson's estimates on the same probes.
  const SlqOptions slq = Runs(kRuns, 4, ProbeDistribution::kRademacher, 11);
  auto result =
      StochasticLanczosQuadrature(op, kSize, options(), slq, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  TraceOptions trace;
  trace.distribution = ProbeDistribution::kRademacher;
  trace.min_probes = kRuns;
  trace.max_probes = kRuns;
  trace.target_relative_error = 0;
  trace.seed = 11;
  auto hutchinson = Hutchinson(op, kSize, options(), trace, Progress());
  ASSERT_TRUE(hutchinson.ok()) << hutchinson.status();
  auto cubed = TraceCubed(op, kSize, options(), trace, Progress());
  ASSERT_TRUE(cubed.ok()) << cubed.status();

  const SpectralEstimate& x = Estimate(*result, "x");
  const SpectralEstimate& x3 = Estimate(*result, "x^3");
  EXPECT_NEAR(x.trace, hutchinson->trace, 1e-10 * std::abs(hutchinson->trace));
  EXPECT_NEAR(x.standard_error, hutchinson->standard_error,
              1e-8 * hutchinson->standard_error);
  EXPECT_NEAR(x3.trace, cubed->trace, 1e-10 * std::abs(cubed->trace));
  EXPECT_NEAR(x3.standard_error, cubed->standard_error,
              1e-8 * cubed->standard_error);

  // Gaussian probes: SLQ's estimate is P * mean of z^T A^3 z / ||z||^2.
  const SlqOptions gaussian = Runs(kRuns, 4, ProbeDistribution::kGaussian, 12);
  auto gaussian_result =
      StochasticLanczosQuadrature(op, kSize, options(), gaussian, Progress());
  ASSERT_TRUE(gaussian_result.ok()) << gaussian_result.status();
  const torch::Tensor a64 = a.to(torch::kCPU, torch::kFloat64);
  double expected = 0;
  for (const torch::Tensor& z : StartProbes(kSize, gaussian)) {
    const torch::Tensor az = a64.mv(z);
    expected += kSize * az.dot(a64.mv(az)).item<double>() /
                z.dot(z).item<double>() / kRuns;
  }
  EXPECT_NEAR(Estimate(*gaussian_result, "x^3").trace, expected,
              1e-10 * std::abs(expected));
}

TEST_P(SlqTest, InvariantKrylovSpaceIsExactForEveryFunction) {
  // Four distinct eigenvalues, one of them 0: every run breaks down after 4
  // steps with the eigenvalues as nodes, and the quadrature is exact for
  // log|x| and the indicator too.
  std::vector<double> values = {0.0, 0.5, 2.0, 7.0};
  std::vector<double> spectrum;
  for (double value : values) spectrum.insert(spectrum.end(), 25, value);
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 13);
  SlqOptions slq = Runs(5, 20, ProbeDistribution::kGaussian, 14);
  auto result = StochasticLanczosQuadrature(MatrixOperator(a.to(device())), 100,
                                            options(), slq, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->hvps, 5 * 4);
  // v^T P_i v for the eigenprojectors P_i, per run.
  const torch::Tensor q = std::get<0>(
      torch::linalg_qr(SeededRandn({100, 100}, 13)));  // as MatrixWithSpectrum
  const std::vector<torch::Tensor> probes = StartProbes(100, slq);
  double log_mean = 0, indicator_mean = 0;
  for (int r = 0; r < 5; ++r) {
    SCOPED_TRACE("run " + std::to_string(r));
    const SlqRun& run = result->runs[r];
    ASSERT_EQ(run.nodes.size(), 4);
    EXPECT_TRUE(run.invariant);
    EXPECT_EQ(run.steps, 4);
    const torch::Tensor coordinates = q.t().mv(probes[r] / probes[r].norm());
    for (int i = 0; i < 4; ++i) {
      EXPECT_NEAR(run.nodes[i], values[i], 1e-12);
      const double mass =
          coordinates.narrow(0, 25 * i, 25).pow(2).sum().item<double>();
      EXPECT_NEAR(run.weights[i], mass, 1e-12);
      if (i > 0) {
        log_mean += mass * std::log(values[i]) / 5;
        indicator_mean += mass / 5;
      }
    }
  }
  EXPECT_NEAR(Estimate(*result, "log|x|").mean, log_mean, 1e-12);
  EXPECT_NEAR(Estimate(*result, "1{|x|>t}").mean, indicator_mean, 1e-12);
  EXPECT_NEAR(Estimate(*result, "1{|x|>t}").trace, 100 * indicator_mean, 1e-10);
  // t = sqrt(eps) * max |Ritz value|, the largest node 7 to rounding.
  EXPECT_NEAR(result->log_threshold,
              std::sqrt(std::numeric_limits<double>::epsilon()) * 7, 1e-18);
}

TEST_P(SlqTest, StepsCappedAtOperatorSize) {
  const torch::Tensor a =
      torch::diag(torch::tensor({1.0, 2.0, 3.0, 4.0, 5.0}, torch::kFloat64));
  auto result = StochasticLanczosQuadrature(
      MatrixOperator(a.to(device())), 5, options(),
      Runs(2, 50, ProbeDistribution::kGaussian, 15), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  for (const SlqRun& run : result->runs) {
    EXPECT_EQ(run.steps, 5);
    EXPECT_TRUE(run.invariant);
    ASSERT_EQ(run.nodes.size(), 5);
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(run.nodes[i], i + 1, 1e-12);
  }
  EXPECT_EQ(result->hvps, 10);
}

TEST_P(SlqTest, RejectsBadOptions) {
  const LinearOperator op =
      MatrixOperator(torch::eye(10, torch::kFloat64).to(device()));
  auto code = [&](const SlqOptions& slq, int64_t size = 10) {
    return StochasticLanczosQuadrature(op, size, options(), slq, Progress())
        .status()
        .code();
  };
  const SlqOptions good = Runs(2, 3, ProbeDistribution::kRademacher, 1);
  EXPECT_EQ(code(good), absl::StatusCode::kOk);
  EXPECT_EQ(code(good, 0), absl::StatusCode::kInvalidArgument);
  SlqOptions bad = good;
  bad.runs = 0;
  EXPECT_EQ(code(bad), absl::StatusCode::kInvalidArgument);
  bad = good;
  bad.steps = 0;
  EXPECT_EQ(code(bad), absl::StatusCode::kInvalidArgument);
  bad = good;
  bad.grid_points = 0;
  EXPECT_EQ(code(bad), absl::StatusCode::kInvalidArgument);
  bad = good;
  bad.sigma = -1;
  EXPECT_EQ(code(bad), absl::StatusCode::kInvalidArgument);
  bad = good;
  bad.grid_min = 1;
  bad.grid_max = 1;
  EXPECT_EQ(code(bad), absl::StatusCode::kInvalidArgument);
  bad = good;
  bad.log_threshold = 0;
  EXPECT_EQ(code(bad), absl::StatusCode::kInvalidArgument);
  // The identity: a single node at 1, whose width falls back to its magnitude.
  auto identity =
      StochasticLanczosQuadrature(op, 10, options(), good, Progress());
  ASSERT_TRUE(identity.ok()) << identity.status();
  EXPECT_EQ(identity->runs[0].steps, 1);
  EXPECT_NE(identity->density.sigma_rule.find("all nodes equal"),
            std::string::npos);
  EXPECT_NEAR(Trapezoid(identity->density.grid, identity->density.density), 1,
              1e-6);
}

TEST_P(SlqTest, ProgressCancellationAndOperatorErrors) {
  const torch::Tensor a = MatrixWithSpectrum(UnitSpectrum(40), 16).to(device());
  std::vector<double> fractions;
  Progress reporting;
  reporting.report = [&fractions](double fraction, const std::string&) {
    fractions.push_back(fraction);
  };
  ASSERT_TRUE(StochasticLanczosQuadrature(
                  MatrixOperator(a), 40, options(),
                  Runs(3, 5, ProbeDistribution::kRademacher, 1), reporting)
                  .ok());
  ASSERT_EQ(fractions.size(), 15);
  for (size_t i = 1; i < fractions.size(); ++i) {
    EXPECT_GT(fractions[i], fractions[i - 1]);
  }
  EXPECT_LT(fractions.back(), 1);

  int polls = 0;
  Progress cancelling;
  cancelling.cancelled = [&polls] { return ++polls > 7; };
  EXPECT_EQ(StochasticLanczosQuadrature(
                MatrixOperator(a), 40, options(),
                Runs(3, 5, ProbeDistribution::kRademacher, 1), cancelling)
                .status()
                .code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(polls, 8);

  const LinearOperator nan_op = testing::NonFiniteOperator(
      std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(StochasticLanczosQuadrature(
                nan_op, 40, options(),
                Runs(3, 5, ProbeDistribution::kRademacher, 1), Progress())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const LinearOperator failing =
      [](const torch::Tensor&) -> absl::StatusOr<torch::Tensor> {
    return absl::ResourceExhaustedError("out of memory: test");
  };
  EXPECT_EQ(StochasticLanczosQuadrature(
                failing, 40, options(),
                Runs(3, 5, ProbeDistribution::kRademacher, 1), Progress())
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_P(SlqTest, Float32MatchesFloat64) {
  constexpr int64_t kSize = 200;
  std::vector<double> spectrum;
  for (int i = 0; i < kSize; ++i)
    spectrum.push_back(5 * std::pow(0.97, i) - 0.5);
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 17);
  const SlqOptions slq = Runs(5, 20, ProbeDistribution::kRademacher, 18);
  auto reference = StochasticLanczosQuadrature(MatrixOperator(a), kSize, kCpu64,
                                               slq, Progress());
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto single = StochasticLanczosQuadrature(
      MatrixOperator(a.to(device(), torch::kFloat32)), kSize,
      options(torch::kFloat32), slq, Progress());
  ASSERT_TRUE(single.ok()) << single.status();
  // Low moments are stable in float32 even where individual nodes are not.
  for (const char* function : {"x", "x^2", "x^3"}) {
    const double want = Estimate(*reference, function).trace;
    EXPECT_NEAR(Estimate(*single, function).trace, want, 1e-4 * std::abs(want))
        << function;
  }
  EXPECT_NEAR(reference->runs[0].nodes.back(), single->runs[0].nodes.back(),
              1e-4 * std::abs(reference->runs[0].nodes.back()));
}

// The dense U diag(eigenvalues) U^T on `size` elements, U a seeded random
// orthonormal size x rank matrix: rank `eigenvalues.size()`, a null space of
// the rest, and products that round like a Hessian's.
LinearOperator LowRankOperator(int64_t size,
                               const std::vector<double>& eigenvalues,
                               uint64_t seed,
                               const torch::TensorOptions& options) {
  const int64_t rank = static_cast<int64_t>(eigenvalues.size());
  const torch::Tensor u =
      std::get<0>(torch::linalg_qr(SeededRandn({size, rank}, seed)));
  const torch::Tensor a =
      (u * torch::tensor(eigenvalues, torch::kFloat64)).mm(u.t());
  return MatrixOperator(((a + a.t()) / 2).to(options));
}

// 100 eigenvalues in [1e12, 1e13]: a summed loss's scale.
std::vector<double> HundredLargeEigenvalues() {
  std::vector<double> eigenvalues;
  for (int i = 0; i < 100; ++i) eigenvalues.push_back(1e12 * (1 + 0.09 * i));
  return eigenvalues;
}

const SpectralEstimate& Rank(const SlqResult& result) {
  return Estimate(result, "1{|x|>t}");
}

TEST_P(SlqTest, RankOfALowRankOperatorIsItsRankInBothDtypes) {
  constexpr int64_t kSize = 2000;
  for (torch::ScalarType dtype : {torch::kFloat64, torch::kFloat32}) {
    SCOPED_TRACE(dtype == torch::kFloat64 ? "float64" : "float32");
    const LinearOperator op =
        LowRankOperator(kSize, HundredLargeEigenvalues(), 21, options(dtype));
    // The default 100 steps, no more than the rank: the spectrum's gap down
    // to 0 lets the moments fix the null space's weight all the same.
    auto result = StochasticLanczosQuadrature(
        op, kSize, options(dtype),
        Runs(10, 100, ProbeDistribution::kRademacher, 22), Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    // The absolute cut of before counts the null space's Ritz node in
    // float32 (in float64 the node lands at 0 or above 1e-6 from run to run
    // and device to device: 1048 to 2000).
    const SpectralEstimate absolute =
        QuadratureEstimates(result->runs, kSize, 1e-6)[4];
    ASSERT_EQ(absolute.function, "1{|x|>t}");
    if (dtype == torch::kFloat32) EXPECT_GT(absolute.trace, 1990);
    const SpectralEstimate& rank = Rank(*result);
    // Within 4 standard errors of 100, the systematic bounds tight.
    EXPECT_GT(rank.standard_error, 0);
    EXPECT_LE(std::abs(rank.trace - 100), 4 * rank.standard_error)
        << rank.trace << " +- " << rank.standard_error;
    EXPECT_FALSE(result->rank_unreliable) << result->rank_warning;
    EXPECT_TRUE(result->rank_warning.empty());
    EXPECT_LE(result->rank_lower, rank.trace);
    EXPECT_GE(result->rank_upper, rank.trace);
    EXPECT_LT(result->rank_upper - result->rank_lower, 1);
    // t = sqrt(eps) * max |Ritz value|, eps of the dtype, stated.
    const double eps = dtype == torch::kFloat64
                           ? std::numeric_limits<double>::epsilon()
                           : std::numeric_limits<float>::epsilon();
    double largest = 0;
    for (const SlqRun& run : result->runs) {
      largest = std::max(largest, run.nodes.back());
    }
    EXPECT_DOUBLE_EQ(result->log_threshold, std::sqrt(eps) * largest);
    EXPECT_NE(result->threshold_rule.find("sqrt(eps) * max |Ritz value|"),
              std::string::npos)
        << result->threshold_rule;
    EXPECT_NE(result->threshold_rule.find("no log_threshold floor"),
              std::string::npos);
  }
}

TEST_P(SlqTest, RankIsScaleFree) {
  // The same operator at three scales: the absolute cut of before read 0 at
  // 1e-8, the relative one reads the same at every scale.
  constexpr int64_t kSize = 500;
  std::vector<double> count;
  for (double scale : {1e-8, 1.0, 1e8}) {
    std::vector<double> eigenvalues;
    for (int i = 0; i < 40; ++i) eigenvalues.push_back(scale * (1 + i));
    auto result = StochasticLanczosQuadrature(
        LowRankOperator(kSize, eigenvalues, 23, options()), kSize, options(),
        Runs(5, 60, ProbeDistribution::kRademacher, 24), Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_FALSE(result->rank_unreliable) << result->rank_warning;
    count.push_back(Rank(*result).trace);
    if (scale == 1e-8) {
      EXPECT_LT(QuadratureEstimates(result->runs, kSize, 1e-6)[4].trace, 1);
    }
  }
  EXPECT_NEAR(count[0], count[1], 1e-6);
  EXPECT_NEAR(count[2], count[1], 1e-6);
}

TEST_P(SlqTest, CutInsideAClusterIsFlagged) {
  // Eigenvalues spread evenly in log over [1e-14, 1]: t (1.5e-8 in float64,
  // 3.5e-4 in float32) lies among them, and no cut there is resolved by 100
  // steps; the bounds contain the count above t.
  constexpr int64_t kSize = 1000;
  std::vector<double> spectrum;
  for (int i = 0; i < kSize; ++i) {
    spectrum.push_back(std::pow(10.0, -14.0 * i / (kSize - 1)));
  }
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 25);
  for (torch::ScalarType dtype : {torch::kFloat64, torch::kFloat32}) {
    SCOPED_TRACE(dtype == torch::kFloat64 ? "float64" : "float32");
    auto result = StochasticLanczosQuadrature(
        MatrixOperator(a.to(device(), dtype)), kSize, options(dtype),
        Runs(5, 100, ProbeDistribution::kRademacher, 26), Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_TRUE(result->rank_unreliable);
    EXPECT_NE(result->rank_warning.find("not resolved"), std::string::npos)
        << result->rank_warning;
    const double above = static_cast<double>(
        std::count_if(spectrum.begin(), spectrum.end(), [&](double x) {
          return x > result->log_threshold;
        }));
    EXPECT_LT(result->rank_lower, above);
    EXPECT_GT(result->rank_upper, above);
  }
}

TEST_P(SlqTest, CleanFullRankSpectrumIsReliable) {
  // Eigenvalues in [1, 10]: nothing near the cut, and the moments exclude any
  // weight there.
  constexpr int64_t kSize = 1000;
  std::vector<double> clean;
  for (int i = 0; i < kSize; ++i) clean.push_back(1 + 9.0 * i / (kSize - 1));
  auto full = StochasticLanczosQuadrature(
      MatrixOperator(MatrixWithSpectrum(clean, 27).to(device())), kSize,
      options(), Runs(5, 100, ProbeDistribution::kRademacher, 26), Progress());
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_FALSE(full->rank_unreliable) << full->rank_warning;
  EXPECT_NEAR(Rank(*full).trace, kSize, 1e-9 * kSize);
  EXPECT_LT(full->rank_upper - full->rank_lower, 1e-6);
}

TEST_P(SlqTest, LogThresholdIsAFloor) {
  const torch::Tensor a = MatrixWithSpectrum({0.0, 1e-3, 0.5, 2.0}, 28);
  SlqOptions slq = Runs(3, 4, ProbeDistribution::kGaussian, 29);
  slq.log_threshold = 1e-2;
  auto raised = StochasticLanczosQuadrature(MatrixOperator(a.to(device())), 4,
                                            options(), slq, Progress());
  ASSERT_TRUE(raised.ok()) << raised.status();
  EXPECT_EQ(raised->log_threshold, 1e-2);
  EXPECT_NE(raised->threshold_rule.find("raised to log_threshold"),
            std::string::npos)
      << raised->threshold_rule;
  slq.log_threshold = 1e-300;
  auto kept = StochasticLanczosQuadrature(MatrixOperator(a.to(device())), 4,
                                          options(), slq, Progress());
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_GT(kept->log_threshold, 1e-300);
  EXPECT_NE(kept->threshold_rule.find("above log_threshold"),
            std::string::npos);
  // Invariant runs: the counts are exact, 3 of 4 above 1e-3 ... and 2 above
  // the raised cut of 1e-2, up to the probes' weights.
  EXPECT_LT(Rank(*raised).trace, Rank(*kept).trace);
}

CURVD_INSTANTIATE_DEVICE_TEST(SlqTest);

}  // namespace
}  // namespace curvd::core

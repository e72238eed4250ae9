#include "core/estimators/slq_rank.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/estimators/slq.h"
#include "tests/core/test_matrices.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::MatrixOperator;

const torch::TensorOptions kCpu64 = torch::TensorOptions(torch::kFloat64);
const std::vector<double> kAtoms = {0.0, 0.5, 1.0, 3.0, 7.0};

// One SLQ run of `steps` steps on diag(kAtoms) with its start vector's
// weights on the atoms (v_i^2 for the unit start vector v).
struct DiagonalRun {
  SlqRun run;
  std::vector<double> weights;
};

DiagonalRun RunOnAtoms(int steps) {
  SlqOptions slq;
  slq.runs = 1;
  slq.steps = steps;
  slq.distribution = ProbeDistribution::kGaussian;
  slq.seed = 31;
  const torch::Tensor a = torch::diag(torch::tensor(kAtoms, torch::kFloat64));
  auto result = StochasticLanczosQuadrature(MatrixOperator(a), 5, kCpu64, slq,
                                            Progress());
  EXPECT_TRUE(result.ok()) << result.status();
  at::Generator generator = SeededGenerator(slq.seed);
  const torch::Tensor z =
      RandomProbe(5, slq.distribution, generator, kCpu64);
  const torch::Tensor v2 = (z / z.norm()).pow(2);
  DiagonalRun out{result->runs[0], {}};
  for (int i = 0; i < 5; ++i) out.weights.push_back(v2[i].item<double>());
  return out;
}

TEST(CanonicalSplitTest, ThroughAnAtomGivesTheAtomsWeight) {
  // Four steps fix the moments up to degree 8, which determine a measure of
  // five atoms: the canonical quadrature through an atom is that measure.
  const DiagonalRun d = RunOnAtoms(4);
  ASSERT_EQ(d.run.alphas.size(), 4);
  ASSERT_EQ(d.run.betas.size(), 4);
  EXPECT_GT(d.run.betas.back(), 1e-3);
  double below = 0;
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE("atom " + std::to_string(i));
    auto split = CanonicalSplitAt(d.run, kAtoms[i]);
    ASSERT_TRUE(split.ok()) << split.status();
    EXPECT_NEAR(split->at, d.weights[i], 1e-10);
    EXPECT_NEAR(split->below, below, 1e-10);
    below += d.weights[i];
  }
}

TEST(CanonicalSplitTest, BoundsTheDistributionEverywhere) {
  // Three steps fix fewer moments than the measure has: the bounds must hold
  // at every point, and be strict somewhere.
  const DiagonalRun d = RunOnAtoms(3);
  double widest = 0;
  for (double xi = -1; xi <= 8; xi += 0.01) {
    auto split = CanonicalSplitAt(d.run, xi);
    ASSERT_TRUE(split.ok()) << split.status();
    double strictly_below = 0, up_to = 0;
    for (int i = 0; i < 5; ++i) {
      if (kAtoms[i] < xi) strictly_below += d.weights[i];
      if (kAtoms[i] <= xi) up_to += d.weights[i];
    }
    EXPECT_LE(split->below, strictly_below + 1e-12) << xi;
    EXPECT_GE(split->below + split->at, up_to - 1e-12) << xi;
    widest = std::max(widest, split->at);
  }
  EXPECT_GT(widest, 0.05);
}

TEST(CanonicalSplitTest, InvariantRunPlacesEveryWeight) {
  // Five steps span the space: the coupling left is rounding, and the count
  // at any cut between atoms is exact.
  const DiagonalRun d = RunOnAtoms(5);
  EXPECT_LT(std::abs(d.run.betas.back()), 1e-12);
  auto bounds = IndicatorBounds(d.run, 0.25);
  ASSERT_TRUE(bounds.ok()) << bounds.status();
  EXPECT_NEAR(bounds->lower, 1 - d.weights[0], 1e-12);
  EXPECT_NEAR(bounds->upper, 1 - d.weights[0], 1e-12);
}

TEST(CanonicalSplitTest, RejectsARunWithoutItsTridiagonal) {
  SlqRun run;
  run.nodes = {1.0};
  run.weights = {1.0};
  EXPECT_EQ(CanonicalSplitAt(run, 0.5).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RankThresholdTest, RelativeRuleAndFloor) {
  SlqRun run;
  run.nodes = {-4.0, 1e-9, 2.0};
  run.weights = {0.25, 0.5, 0.25};
  const double eps = 1e-16;
  RankCut cut = RankThreshold({run}, eps, std::nullopt);
  EXPECT_DOUBLE_EQ(cut.threshold, 1e-8 * 4);
  EXPECT_NE(cut.rule.find("no log_threshold floor"), std::string::npos);
  cut = RankThreshold({run}, eps, 1e-3);
  EXPECT_DOUBLE_EQ(cut.threshold, 1e-3);
  EXPECT_NE(cut.rule.find("raised to log_threshold"), std::string::npos)
      << cut.rule;
}

}  // namespace
}  // namespace curvd::core

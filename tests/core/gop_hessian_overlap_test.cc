// GopOptions::hessian_overlap_k: the overlap helper's identities and a linear
// model whose Hessian and GOP eigenspaces are known in closed form.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/linalg/subspace_overlap.h"
#include "core/measurements/gop.h"
#include "core/objective/objective.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::LayeredTanhMlp;
using ::curvd::core::testing::LinearModel;
using ::curvd::core::testing::SeededLabels;
using ::curvd::core::testing::SeededRandn;
using ::testing::HasSubstr;

class SubspaceOverlapTest : public DeviceTest {
 protected:
  // The columns of a seeded orthogonal 6 x 6 matrix, as rows.
  torch::Tensor Basis() {
    return std::get<0>(torch::linalg_qr(SeededRandn({6, 6}, 11)))
        .t()
        .contiguous()
        .to(device());
  }
};

TEST_P(SubspaceOverlapTest, ItselfOneOrthogonalZeroAndAHalfTurnedPlane) {
  const torch::Tensor q = Basis();
  const torch::Tensor plane = q.narrow(0, 0, 2);
  // The same plane in another basis of it.
  const double c = std::cos(0.3), s = std::sin(0.3);
  const torch::Tensor turned =
      torch::stack({c * q[0] + s * q[1], -s * q[0] + c * q[1]});
  SubspaceOverlap same = ComputeSubspaceOverlap(plane, turned);
  EXPECT_NEAR(same.overlap, 1.0, 1e-14);
  ASSERT_EQ(same.cosines.size(), 2u);
  EXPECT_NEAR(same.cosines[1], 1.0, 1e-14);
  SubspaceOverlap orthogonal =
      ComputeSubspaceOverlap(plane, q.narrow(0, 2, 3));
  EXPECT_NEAR(orthogonal.overlap, 0.0, 1e-14);
  ASSERT_EQ(orthogonal.cosines.size(), 2u);
  EXPECT_NEAR(orthogonal.cosines[0], 0.0, 1e-14);
  // span{q0, (q1 + q2)/sqrt 2}: principal cosines 1 and 1/sqrt 2, overlap
  // (1 + 1/2) / 2.
  const torch::Tensor tilted =
      torch::stack({q[0], (q[1] + q[2]) / std::sqrt(2.0)});
  SubspaceOverlap partial = ComputeSubspaceOverlap(plane, tilted);
  EXPECT_NEAR(partial.overlap, 0.75, 1e-14);
  EXPECT_NEAR(partial.cosines[0], 1.0, 1e-14);
  EXPECT_NEAR(partial.cosines[1], 1 / std::sqrt(2.0), 1e-14);
  // A line in a plane lies in it: normalised by the smaller dimension.
  EXPECT_NEAR(ComputeSubspaceOverlap(q.narrow(0, 1, 1), plane).overlap, 1.0,
              1e-14);
  EXPECT_TRUE(std::isnan(
      ComputeSubspaceOverlap(q.narrow(0, 0, 0), plane).overlap));
}

CURVD_INSTANTIATE_DEVICE_TEST(SubspaceOverlapTest);

// y = w^T x, MSE: the shard loss is (1/N) sum_i r_i^2, r_i = w^T x_i - y_i,
// so H = (2/N) X^T X at any w and g_i = 2 r_i x_i, C = (4/N) sum_i r_i^2
// x_i x_i^T. With x_i = a_i q_i for orthonormal q_i (N = 3 rows of a seeded
// orthogonal 5 x 5 matrix, M = 5) both are diagonal in the q_i:
// H's eigenvalues (2/N) a_i^2 and C's (4/N) r_i^2 a_i^2, and two zeros (H)
// or M - N (C).
class GopHessianOverlapTest : public DeviceTest {
 protected:
  static constexpr int64_t kN = 3, kM = 5;
  // The objective of a = `scales` with residuals r = `residuals`.
  Objective DiagonalObjective(const std::vector<double>& scales,
                              const std::vector<double>& residuals) {
    const torch::Tensor q = std::get<0>(torch::linalg_qr(SeededRandn({kM, kM}, 4)))
                                .t()
                                .narrow(0, 0, kN);
    const torch::Tensor x =
        torch::tensor(scales, torch::kFloat64).unsqueeze(1) * q;
    model_ = std::make_unique<LinearModel>(kM, 1, /*seed=*/1);
    model_->To(device(), torch::kFloat64);
    const torch::Tensor w =
        model_->Parameters()[0].detach().cpu().reshape({-1});
    const torch::Tensor y =
        (x.mv(w) - torch::tensor(residuals, torch::kFloat64)).unsqueeze(1);
    auto objective = Objective::Create(model_.get(), x.to(device()),
                                       y.to(device()), LossFunction::kMse, 0);
    EXPECT_TRUE(objective.ok()) << objective.status();
    return std::move(objective).value();
  }
  std::unique_ptr<LinearModel> model_;
};

// DiagonalObjective with a = (3, 2, 1): H's top two are q_1 (6) and q_2
// (8/3). r = (0.1, 1, 5) puts C's order at q_3, q_2, q_1: the top-2
// subspaces share q_2 only, overlap 1/2, cosines (1, 0). r = (5, 1, 0.1)
// keeps H's order: overlap 1. With k = 4 the GOP has rank 3 < 4, so its 3
// directions are compared with H's top 4 (6, 8/3, 2/3 and a 0), which
// contain them: 1.
TEST_P(GopHessianOverlapTest, LinearModelWithKnownEigenspaces) {
  struct Case {
    std::vector<double> residuals;
    int k;
    double overlap;
    std::vector<double> cosines;
    std::vector<double> hessian;
  };
  for (const Case& c :
       {Case{{0.1, 1, 5}, 2, 0.5, {1, 0}, {6, 8.0 / 3}},
        Case{{5, 1, 0.1}, 2, 1, {1, 1}, {6, 8.0 / 3}},
        Case{{5, 1, 0.1}, 4, 1, {1, 1, 1}, {6, 8.0 / 3, 2.0 / 3, 0}}}) {
    SCOPED_TRACE(absl::StrCat("r_1 = ", c.residuals[0], ", k = ", c.k));
    Objective objective = DiagonalObjective({3, 2, 1}, c.residuals);
    GopOptions options;
    options.hessian_overlap_k = c.k;
    auto result = MeasureGop(objective, options, Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_TRUE(result->hessian_overlap.has_value());
    const GopHessianOverlap& overlap = *result->hessian_overlap;
    EXPECT_EQ(overlap.k, c.k);
    EXPECT_EQ(overlap.gop_dimension, std::min<int64_t>(c.k, kN));
    EXPECT_EQ(overlap.hessian_dimension, c.k);
    EXPECT_NEAR(overlap.overlap, c.overlap, 1e-9);
    EXPECT_NEAR(overlap.random_baseline, static_cast<double>(c.k) / kM, 1e-15);
    ASSERT_EQ(overlap.cosines.size(), c.cosines.size());
    for (size_t j = 0; j < c.cosines.size(); ++j) {
      EXPECT_NEAR(overlap.cosines[j], c.cosines[j], 1e-9) << j;
    }
    ASSERT_EQ(overlap.hessian_eigenpairs.size(), c.hessian.size());
    for (size_t j = 0; j < c.hessian.size(); ++j) {
      EXPECT_NEAR(overlap.hessian_eigenpairs[j].value, c.hessian[j], 1e-9)
          << j;
      EXPECT_TRUE(overlap.hessian_eigenpairs[j].converged) << j;
      EXPECT_LT(overlap.hessian_eigenpairs[j].residual_norm, 1e-9) << j;
    }
    EXPECT_TRUE(overlap.lanczos_converged);
    // Without `eigenvectors` none is returned, though some were computed.
    EXPECT_EQ(result->num_eigenvectors, 0);
  }
}

// The mean-gradient variant's one direction g-bar / ||g-bar||: for
// DiagonalObjective, g-bar = (2/N) sum_i r_i a_i q_i, and its overlap with
// H's top direction q_1 is (r_1 a_1)^2 / sum_i (r_i a_i)^2.
TEST_P(GopHessianOverlapTest, MeanGradientLineAgainstTheTopHessianDirection) {
  Objective objective = DiagonalObjective({3, 2, 1}, {1, -2, 3});
  GopOptions options;
  options.variant = GopVariant::kMeanGradient;
  options.hessian_overlap_k = 1;
  auto result = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->hessian_overlap.has_value());
  EXPECT_EQ(result->hessian_overlap->gop_dimension, 1);
  EXPECT_NEAR(result->hessian_overlap->overlap, 9.0 / (9 + 16 + 9), 1e-9);
}

class GopOverlapOptionTest : public DeviceTest {
 protected:
  void SetUp() override {
    DeviceTest::SetUp();
    if (IsSkipped()) return;
    mlp_ = std::make_unique<LayeredTanhMlp>(std::vector<int64_t>{3, 4, 2}, 5);
    mlp_->To(device(), torch::kFloat64);
    inputs_ = SeededRandn({7, 3}, 6).to(device());
    targets_ = SeededLabels(7, 2, 7).to(device());
  }
  Objective MlpObjective() {
    auto objective = Objective::Create(mlp_.get(), inputs_, targets_,
                                       LossFunction::kCrossEntropy, 0);
    EXPECT_TRUE(objective.ok()) << objective.status();
    return std::move(objective).value();
  }
  std::unique_ptr<LayeredTanhMlp> mlp_;
  torch::Tensor inputs_;
  torch::Tensor targets_;
};

// Off (the default) computes no Hessian product and sets nothing; on (k 5
// above top_k 3), the rest of the result is the same, eigenvectors included.
TEST_P(GopOverlapOptionTest, OffLeavesTheResultAsBefore) {
  GopOptions options;
  options.top_k = 3;
  options.eigenvectors = true;
  options.per_layer = true;
  Objective off_objective = MlpObjective();
  auto off = MeasureGop(off_objective, options, Progress());
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->hessian_overlap.has_value());
  EXPECT_EQ(off_objective.hvps(), 0);
  options.hessian_overlap_k = 5;
  Objective on_objective = MlpObjective();
  auto on = MeasureGop(on_objective, options, Progress());
  ASSERT_TRUE(on.ok()) << on.status();
  ASSERT_TRUE(on->hessian_overlap.has_value());
  EXPECT_GT(on_objective.hvps(), 0);
  EXPECT_EQ(on->hessian_overlap->gop_dimension, 5);
  EXPECT_GE(on->hessian_overlap->overlap, 0.0);
  EXPECT_LE(on->hessian_overlap->overlap, 1.0 + 1e-12);
  EXPECT_EQ(on->metrics.top_eigenvalues, off->metrics.top_eigenvalues);
  EXPECT_EQ(on->metrics.trace, off->metrics.trace);
  EXPECT_EQ(on->num_eigenvectors, off->num_eigenvectors);
  // The same eigenvectors, to the rounding of a product with more columns.
  ASSERT_EQ(on->eigenvectors.size(), off->eigenvectors.size());
  for (size_t j = 0; j < on->eigenvectors.size(); ++j) {
    EXPECT_NEAR(on->eigenvectors[j], off->eigenvectors[j], 1e-13) << j;
  }
  ASSERT_EQ(on->layers.size(), off->layers.size());
  EXPECT_EQ(on->layers[1].metrics.eigenvalues,
            off->layers[1].metrics.eigenvalues);
}

TEST_P(GopOverlapOptionTest, OutOfRangeKIsRefusedNamingTheField) {
  Objective objective = MlpObjective();
  for (int k : {-1, 65}) {
    GopOptions options;
    options.hessian_overlap_k = k;
    auto result = MeasureGop(objective, options, Progress());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().message(),
                HasSubstr("gop.hessian_overlap_k must be in [0, 64]"));
  }
  EXPECT_EQ(objective.hvps(), 0);
}

CURVD_INSTANTIATE_DEVICE_TEST(GopHessianOverlapTest);
CURVD_INSTANTIATE_DEVICE_TEST(GopOverlapOptionTest);

}  // namespace
}  // namespace curvd::core

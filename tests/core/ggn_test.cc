// The generalised Gauss-Newton products of Objective (Ggnvp, Ggnvps) against
// the Hessian where they agree (models linear in their parameters), against
// J^T H_out J from finite-difference Jacobian-vector products where they do
// not, and against themselves across micro-batches, blocks of vectors and
// retained graphs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/objective/objective.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::LinearModel;
using ::curvd::core::testing::LinearWithUnusedParameter;
using ::curvd::core::testing::MatrixColumns;
using ::curvd::core::testing::RelativeError;
using ::curvd::core::testing::SeededLabels;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::TanhMlp;

LinearOperator HvpOf(Objective& objective) {
  return [&objective](const torch::Tensor& v) { return objective.Hvp(v); };
}

LinearOperator GgnvpOf(Objective& objective) {
  return [&objective](const torch::Tensor& v) { return objective.Ggnvp(v); };
}

std::string LossName(LossFunction loss) {
  return loss == LossFunction::kMse ? "mse" : "cross-entropy";
}

// Targets of `loss` for N samples and C outputs.
torch::Tensor Targets(LossFunction loss, int64_t n, int64_t c, uint64_t seed) {
  return loss == LossFunction::kMse ? SeededRandn({n, c}, seed)
                                    : SeededLabels(n, c, seed);
}

// A TanhMlp that counts its forward passes: a product through retained
// graphs runs none.
class CountingTanhMlp : public TanhMlp {
 public:
  using TanhMlp::TanhMlp;
  torch::Tensor Forward(const torch::Tensor& x) override {
    ++forwards;
    return TanhMlp::Forward(x);
  }
  int64_t forwards = 0;
};

// The model's outputs on `x` at w + h d (d over every parameter), the
// parameters restored afterwards.
torch::Tensor OutputsAt(Model& model, const torch::Tensor& x,
                        const torch::Tensor& d, double h) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parameters = model.Parameters();
  std::vector<torch::Tensor> saved;
  int64_t offset = 0;
  for (torch::Tensor& p : parameters) {
    saved.push_back(p.clone());
    p.add_(d.narrow(0, offset, p.numel()).view(p.sizes()), h);
    offset += p.numel();
  }
  torch::Tensor outputs = model.Forward(x);
  for (size_t i = 0; i < parameters.size(); ++i) parameters[i].copy_(saved[i]);
  return outputs;
}

class GgnTest : public DeviceTest {};

// For a model linear in its parameters J does not depend on them, the term of
// the Hessian with second derivatives of the outputs vanishes, and G = H.
TEST_P(GgnTest, LinearModelGgnEqualsHessian) {
  constexpr int64_t kN = 23, kD = 5, kC = 3;
  for (LossFunction loss : {LossFunction::kMse, LossFunction::kCrossEntropy}) {
    SCOPED_TRACE(LossName(loss));
    LinearModel model(kD, kC, /*seed=*/1);
    model.To(device(), torch::kFloat64);
    auto objective = Objective::Create(
        &model, SeededRandn({kN, kD}, 2).to(device()),
        Targets(loss, kN, kC, 3).to(device()), loss, /*micro_batch_size=*/0);
    ASSERT_TRUE(objective.ok()) << objective.status();
    const torch::Tensor ggn =
        MatrixColumns(GgnvpOf(*objective), kD * kC, options());
    const torch::Tensor hessian =
        MatrixColumns(HvpOf(*objective), kD * kC, options());
    EXPECT_LT(RelativeError(ggn, hessian), 1e-10);
    EXPECT_EQ(objective->hvps(), 2 * kD * kC);
  }
}

// With hidden tanh units G is J^T H_out J: symmetric, positive semi-definite
// (the losses are convex in the outputs) and not the Hessian. Its quadratic
// form matches (J d)^T H_out (J d) with J d from central differences of the
// outputs, for H_out in closed form: 2/(N C) I for MSE, the softmax Jacobian
// diag(p) - p p^T per sample over N for cross-entropy.
TEST_P(GgnTest, TanhMlpGgnIsJtHJAndPositiveSemiDefinite) {
  constexpr int64_t kN = 30, kC = 3;
  for (LossFunction loss : {LossFunction::kMse, LossFunction::kCrossEntropy}) {
    SCOPED_TRACE(LossName(loss));
    TanhMlp model({4, 6, kC}, /*seed=*/4);
    model.To(device(), torch::kFloat64);
    const torch::Tensor x = SeededRandn({kN, 4}, 5).to(device());
    auto objective = Objective::Create(
        &model, x, Targets(loss, kN, kC, 6).to(device()), loss, 7);
    ASSERT_TRUE(objective.ok()) << objective.status();
    const int64_t p = objective->num_parameters();
    ASSERT_EQ(p, 51);

    const torch::Tensor ggn = MatrixColumns(GgnvpOf(*objective), p, options());
    const double scale = ggn.abs().max().item<double>();
    EXPECT_LT((ggn - ggn.t()).abs().max().item<double>(), 1e-12 * scale);
    const torch::Tensor eigenvalues =
        torch::linalg_eigvalsh((ggn + ggn.t()) / 2);
    EXPECT_GE(eigenvalues[0].item<double>(),
              -1e-10 * eigenvalues[-1].item<double>());
    const torch::Tensor hessian =
        MatrixColumns(HvpOf(*objective), p, options());
    EXPECT_GT(RelativeError(ggn, hessian), 1e-3);

    const torch::Tensor d = SeededRandn({p}, 8);
    constexpr double kH = 1e-4;
    const torch::Tensor jd = ((OutputsAt(model, x, d.to(device()), kH) -
                               OutputsAt(model, x, d.to(device()), -kH)) /
                              (2 * kH))
                                 .cpu();
    double want;
    if (loss == LossFunction::kMse) {
      want = 2.0 / (kN * kC) * jd.pow(2).sum().item<double>();
    } else {
      const torch::Tensor probabilities =
          torch::softmax(model.Forward(x).detach().cpu(), 1);
      const torch::Tensor mean = (probabilities * jd).sum(1);
      want = ((probabilities * jd.pow(2)).sum(1) - mean.pow(2))
                 .sum()
                 .item<double>() /
             kN;
    }
    EXPECT_NEAR(d.dot(ggn.mv(d)).item<double>(), want, 1e-7 * want);
  }
}

// Batch b's G_b is weighted by |b|/N: micro-batches, the last one short, give
// the whole shard's G.
TEST_P(GgnTest, MicroBatchesGiveTheWholeShard) {
  constexpr int64_t kN = 37;
  for (LossFunction loss : {LossFunction::kMse, LossFunction::kCrossEntropy}) {
    SCOPED_TRACE(LossName(loss));
    TanhMlp model({6, 10, 4}, /*seed=*/9);
    model.To(device(), torch::kFloat64);
    const torch::Tensor x = SeededRandn({kN, 6}, 10).to(device());
    const torch::Tensor y = Targets(loss, kN, 4, 11).to(device());
    auto whole = Objective::Create(&model, x, y, loss, 0);
    ASSERT_TRUE(whole.ok()) << whole.status();
    const torch::Tensor v =
        SeededRandn({whole->num_parameters()}, 12).to(device());
    const torch::Tensor gv = whole->Ggnvp(v).value();
    for (int64_t batch : {8, 1, 36}) {
      SCOPED_TRACE(batch);
      auto batched = Objective::Create(&model, x, y, loss, batch);
      ASSERT_TRUE(batched.ok()) << batched.status();
      EXPECT_LT(RelativeError(batched->Ggnvp(v).value(), gv), 1e-12);
    }
  }
}

// Ggnvps applies each micro-batch's graph to every vector of the block, built
// per call or retained across calls: the products are those of one Ggnvp per
// vector. Retained graphs run no forward pass after the first call.
TEST_P(GgnTest, BlockProductsEqualOneProductPerVector) {
  constexpr int64_t kN = 37;  // 5 micro-batches of 8, the last of 5
  const torch::Tensor x = SeededRandn({kN, 6}, 13).to(device());
  const torch::Tensor labels = SeededLabels(kN, 4, 14).to(device());
  CountingTanhMlp model({6, 10, 4}, /*seed=*/15);
  model.To(device(), torch::kFloat64);
  auto sequential =
      Objective::Create(&model, x, labels, LossFunction::kCrossEntropy, 8);
  ASSERT_TRUE(sequential.ok()) << sequential.status();
  const int64_t p = sequential->num_parameters();
  const torch::Tensor block = SeededRandn({5, p}, 16).to(device());
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < 5; ++i) rows.push_back(*sequential->Ggnvp(block[i]));
  const torch::Tensor expected = torch::stack(rows);
  EXPECT_EQ(sequential->hvps(), 5);

  for (bool retain : {false, true}) {
    SCOPED_TRACE(absl::StrCat("retain ", retain));
    auto blocked =
        Objective::Create(&model, x, labels, LossFunction::kCrossEntropy, 8);
    ASSERT_TRUE(blocked.ok()) << blocked.status();
    blocked->set_retain_graphs(retain);
    model.forwards = 0;
    EXPECT_LT(RelativeError(blocked->Ggnvps(block).value(), expected), 1e-13);
    EXPECT_EQ(model.forwards, 5);
    EXPECT_LT(RelativeError(blocked->Ggnvps(block.narrow(0, 1, 3)).value(),
                            expected.narrow(0, 1, 3)),
              1e-13);
    EXPECT_LT(RelativeError(blocked->Ggnvp(block[4]).value(), expected[4]),
              1e-13);
    EXPECT_EQ(model.forwards, retain ? 5 : 15);
    EXPECT_EQ(blocked->hvps(), 9);
    // The Hessian's graphs are kept apart from the GGN's.
    const torch::Tensor hv = blocked->Hvp(block[0]).value();
    EXPECT_GT(RelativeError(hv, expected[0]), 1e-3);
    EXPECT_LT(RelativeError(blocked->Ggnvp(block[0]).value(), expected[0]),
              1e-13);
    EXPECT_EQ(model.forwards, retain ? 10 : 25);
    blocked->set_retain_graphs(false);
    EXPECT_LT(RelativeError(blocked->Ggnvp(block[0]).value(), expected[0]),
              1e-13);
  }
  EXPECT_EQ(
      sequential->Ggnvps(torch::ones({2, p + 1}, options())).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sequential->Ggnvps(torch::ones({p}, options())).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sequential->Ggnvp(torch::ones({p - 1}, options())).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A parameter the outputs do not depend on has zero GGN rows and columns; a
// block of only such parameters has G = 0.
TEST_P(GgnTest, UnusedParameterHasZeroRows) {
  LinearWithUnusedParameter model(3, 2, /*seed=*/17);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({7, 3}, 18).to(device());
  const torch::Tensor y = SeededRandn({7, 2}, 19).to(device());
  // G = H: the W block is 2/(N C) I_C (x) X^T X.
  const torch::Tensor xc = x.to(torch::kCPU);
  const torch::Tensor hessian_w =
      torch::kron(torch::eye(2, torch::kFloat64), xc.t().mm(xc)) * (2.0 / 14);
  for (bool retain : {false, true}) {
    SCOPED_TRACE(retain);
    auto objective = Objective::Create(&model, x, y, LossFunction::kMse, 3);
    ASSERT_TRUE(objective.ok()) << objective.status();
    objective->set_retain_graphs(retain);
    const torch::Tensor block = SeededRandn({2, 8}, 20);
    const torch::Tensor gv =
        objective->Ggnvps(block.to(device())).value().cpu();
    EXPECT_LT(
        RelativeError(gv.narrow(1, 0, 6), block.narrow(1, 0, 6).mm(hessian_w)),
        1e-12);
    EXPECT_EQ(gv.narrow(1, 6, 2).abs().max().item<double>(), 0.0);

    auto unused = Objective::Create(&model, x, y, LossFunction::kMse, 3,
                                    ParameterBlock{{"p1"}, {}});
    ASSERT_TRUE(unused.ok()) << unused.status();
    unused->set_retain_graphs(retain);
    const torch::Tensor zero =
        unused->Ggnvps(SeededRandn({2, 2}, 21).to(device())).value();
    EXPECT_EQ(zero.abs().max().item<double>(), 0.0);
  }
}

CURVD_INSTANTIATE_DEVICE_TEST(GgnTest);

}  // namespace
}  // namespace curvd::core

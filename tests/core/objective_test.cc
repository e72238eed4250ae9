#include "core/objective.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <string>

#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::ExplicitMatrix;
using ::curvd::core::testing::LinearModel;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::TanhMlp;
using ::testing::HasSubstr;

// max |actual - expected| relative to max |expected|, both moved to the CPU.
double RelativeError(const torch::Tensor& actual,
                     const torch::Tensor& expected) {
  const torch::Tensor a = actual.to(torch::kCPU, torch::kFloat64);
  const torch::Tensor e = expected.to(torch::kCPU, torch::kFloat64);
  return (a - e).abs().max().item<double>() / e.abs().max().item<double>();
}

LinearOperator HvpOf(Objective& objective) {
  return [&objective](const torch::Tensor& v) { return objective.Hvp(v); };
}

// Integer class labels in [0, classes).
torch::Tensor SeededLabels(int64_t n, int64_t classes, uint64_t seed) {
  at::Generator generator = SeededGenerator(seed);
  return torch::randint(0, classes, {n}, generator, torch::kInt64);
}

class ObjectiveTest : public DeviceTest {};

TEST_P(ObjectiveTest, LinearMseMatchesClosedForms) {
  constexpr int64_t kN = 20, kD = 5, kC = 3;
  LinearModel model(kD, kC, /*seed=*/1);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({kN, kD}, 2);
  const torch::Tensor y = SeededRandn({kN, kC}, 3);
  auto objective =
      Objective::Create(&model, x.to(device()), y.to(device()),
                        LossFunction::kMse, /*micro_batch_size=*/0);
  ASSERT_TRUE(objective.ok()) << objective.status();

  const torch::Tensor w = model.Parameters()[0].detach().cpu();
  const torch::Tensor residual = x.mm(w.t()) - y;
  const double loss = residual.pow(2).mean().item<double>();
  // L = 1/(N C) sum (x W^T - y)^2: gradient 2/(N C) R^T X, Hessian 2/(N C) I_C
  // (x) X^T X.
  const torch::Tensor gradient =
      residual.t().mm(x).reshape({-1}) * (2.0 / (kN * kC));
  const torch::Tensor hessian =
      torch::kron(torch::eye(kC, torch::kFloat64), x.t().mm(x)) *
      (2.0 / (kN * kC));

  EXPECT_NEAR(objective->Loss().value(), loss, 1e-13 * loss);
  EXPECT_LT(RelativeError(objective->Gradient().value(), gradient), 1e-12);
  EXPECT_LT(RelativeError(ExplicitMatrix(HvpOf(*objective), kD * kC, options()),
                          hessian),
            1e-12);
  EXPECT_EQ(objective->hvps(), kD * kC);
  EXPECT_EQ(objective->num_parameters(), kD * kC);
  EXPECT_EQ(objective->num_samples(), kN);
}

TEST_P(ObjectiveTest, SoftmaxCrossEntropyLinearMatchesClosedForm) {
  constexpr int64_t kN = 16, kD = 4, kC = 3;
  LinearModel model(kD, kC, /*seed=*/4);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({kN, kD}, 5);
  const torch::Tensor labels = SeededLabels(kN, kC, 6);
  auto objective =
      Objective::Create(&model, x.to(device()), labels.to(device()),
                        LossFunction::kCrossEntropy, 0);
  ASSERT_TRUE(objective.ok()) << objective.status();

  // H = 1/N sum_k (diag p_k - p_k p_k^T) (x) x_k x_k^T.
  const torch::Tensor p =
      torch::softmax(x.mm(model.Parameters()[0].detach().cpu().t()), 1);
  torch::Tensor hessian = torch::zeros({kC * kD, kC * kD}, torch::kFloat64);
  for (int64_t k = 0; k < kN; ++k) {
    const torch::Tensor pk = p[k];
    hessian += torch::kron(torch::diag(pk) - torch::outer(pk, pk),
                           torch::outer(x[k], x[k]));
  }
  hessian /= kN;
  EXPECT_LT(RelativeError(ExplicitMatrix(HvpOf(*objective), kC * kD, options()),
                          hessian),
            1e-12);
}

TEST_P(ObjectiveTest, MicroBatchesAreWeightedBySize) {
  constexpr int64_t kN = 37;  // batches of 8 leave a short last batch of 5
  TanhMlp model({6, 10, 4}, /*seed=*/7);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({kN, 6}, 8).to(device());
  const torch::Tensor labels = SeededLabels(kN, 4, 9).to(device());
  auto whole =
      Objective::Create(&model, x, labels, LossFunction::kCrossEntropy, 0);
  ASSERT_TRUE(whole.ok()) << whole.status();
  const torch::Tensor v =
      SeededRandn({whole->num_parameters()}, 10).to(device());
  const double loss = whole->Loss().value();
  const torch::Tensor gradient = whole->Gradient().value();
  const torch::Tensor hv = whole->Hvp(v).value();

  for (int64_t batch : {8, 1, 36}) {
    SCOPED_TRACE(batch);
    auto batched = Objective::Create(&model, x, labels,
                                     LossFunction::kCrossEntropy, batch);
    ASSERT_TRUE(batched.ok()) << batched.status();
    EXPECT_EQ(batched->micro_batch_size(), batch);
    EXPECT_NEAR(batched->Loss().value(), loss, 1e-12 * loss);
    EXPECT_LT(RelativeError(batched->Gradient().value(), gradient), 1e-12);
    EXPECT_LT(RelativeError(batched->Hvp(v).value(), hv), 1e-12);
  }
}

TEST_P(ObjectiveTest, Float32MatchesFloat64CpuReference) {
  constexpr int64_t kN = 64;
  const torch::Tensor x = SeededRandn({kN, 6}, 11);
  const torch::Tensor labels = SeededLabels(kN, 4, 12);
  TanhMlp reference_model({6, 16, 4}, /*seed=*/13);
  auto reference = Objective::Create(&reference_model, x, labels,
                                     LossFunction::kCrossEntropy, 0);
  ASSERT_TRUE(reference.ok()) << reference.status();
  TanhMlp model({6, 16, 4}, /*seed=*/13);
  model.To(device(), torch::kFloat32);
  auto single =
      Objective::Create(&model, x.to(device(), torch::kFloat32),
                        labels.to(device()), LossFunction::kCrossEntropy, 16);
  ASSERT_TRUE(single.ok()) << single.status();
  const torch::Tensor v = SeededRandn({reference->num_parameters()}, 14);

  // float32 keeps about 7 digits; a few roundings per layer leave 1e-5.
  constexpr double kTolerance = 1e-5;
  const double loss = reference->Loss().value();
  EXPECT_NEAR(single->Loss().value(), loss, kTolerance * loss);
  EXPECT_LT(
      RelativeError(single->Gradient().value(), reference->Gradient().value()),
      kTolerance);
  EXPECT_LT(RelativeError(single->Hvp(v.to(device(), torch::kFloat32)).value(),
                          reference->Hvp(v).value()),
            kTolerance);
}

TEST_P(ObjectiveTest, MseTakesVectorTargetsForOneOutput) {
  LinearModel model(3, 1, /*seed=*/15);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({9, 3}, 16).to(device());
  const torch::Tensor y = SeededRandn({9}, 17).to(device());
  auto vector_targets = Objective::Create(&model, x, y, LossFunction::kMse, 0);
  auto column_targets =
      Objective::Create(&model, x, y.unsqueeze(1), LossFunction::kMse, 0);
  ASSERT_TRUE(vector_targets.ok()) << vector_targets.status();
  ASSERT_TRUE(column_targets.ok()) << column_targets.status();
  EXPECT_DOUBLE_EQ(vector_targets->Loss().value(),
                   column_targets->Loss().value());
}

TEST_P(ObjectiveTest, RejectsInputsThatDoNotFitTheModel) {
  LinearModel model(5, 3, /*seed=*/18);
  model.To(device(), torch::kFloat64);
  auto objective = Objective::Create(
      &model, SeededRandn({10, 7}, 19).to(device()),
      SeededRandn({10, 3}, 20).to(device()), LossFunction::kMse, 0);
  ASSERT_EQ(objective.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(objective.status().message(), HasSubstr("[10, 7]"));
  EXPECT_THAT(objective.status().message(), HasSubstr("do not fit the model"));
}

TEST_P(ObjectiveTest, RejectsTargetsThatDoNotMatchOutputs) {
  LinearModel model(5, 3, /*seed=*/21);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({10, 5}, 22).to(device());
  auto invalid = [&](const torch::Tensor& targets, LossFunction loss) {
    return Objective::Create(&model, x, targets.to(device()), loss, 0).status();
  };
  const absl::Status wrong_width =
      invalid(SeededRandn({10, 4}, 23), LossFunction::kMse);
  EXPECT_EQ(wrong_width.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong_width.message(), HasSubstr("[10, 4]"));
  EXPECT_EQ(invalid(SeededRandn({9, 3}, 24), LossFunction::kMse).code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status out_of_range =
      invalid(torch::full({10}, 3, torch::kInt64), LossFunction::kCrossEntropy);
  EXPECT_EQ(out_of_range.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out_of_range.message(), HasSubstr("3 outputs"));
  EXPECT_EQ(
      invalid(torch::full({10}, -1, torch::kInt64), LossFunction::kCrossEntropy)
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(invalid(SeededRandn({10}, 25), LossFunction::kCrossEntropy).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      invalid(torch::zeros({10}, torch::kInt64), LossFunction::kMse).code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_P(ObjectiveTest, RejectsNonFiniteWeightsAndInputs) {
  LinearModel model(4, 2, /*seed=*/26);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({6, 4}, 27).to(device());
  const torch::Tensor y = SeededRandn({6, 2}, 28).to(device());

  torch::Tensor bad_x = x.clone();
  bad_x[2][1] = std::numeric_limits<double>::infinity();
  EXPECT_EQ(Objective::Create(&model, bad_x, y, LossFunction::kMse, 0)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);

  {
    torch::NoGradGuard no_grad;
    model.Parameters()[0][1][3] = std::nan("");
  }
  const absl::Status nan_weights =
      Objective::Create(&model, x, y, LossFunction::kMse, 0).status();
  EXPECT_EQ(nan_weights.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nan_weights.message(), HasSubstr("p0"));
}

TEST_P(ObjectiveTest, RejectsOverflowingLossAndWrongVectorSize) {
  LinearModel model(4, 2, /*seed=*/29);
  model.To(device(), torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    model.Parameters()[0].mul_(1e200);  // finite weights, (x W^T)^2 overflows
  }
  auto objective = Objective::Create(
      &model, SeededRandn({6, 4}, 30).to(device()),
      SeededRandn({6, 2}, 31).to(device()), LossFunction::kMse, 0);
  ASSERT_TRUE(objective.ok()) << objective.status();
  EXPECT_EQ(objective->Loss().status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(objective->Hvp(torch::ones({7}, options())).status().code(),
            absl::StatusCode::kInvalidArgument);
}

CURVD_INSTANTIATE_DEVICE_TEST(ObjectiveTest);

}  // namespace
}  // namespace curvd::core

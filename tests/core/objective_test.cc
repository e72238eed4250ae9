#include "core/objective/objective.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/api/sources.h"
#include "core/engine/device_graph.h"
#include "tests/core/toy_models.h"
#include "tests/core/zoo_mlp_fixture.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::ExplicitMatrix;
using ::curvd::core::testing::LayeredTanhMlp;
using ::curvd::core::testing::LinearModel;
using ::curvd::core::testing::LinearWithUnusedParameter;
using ::curvd::core::testing::RelativeError;
using ::curvd::core::testing::SeededLabels;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::TanhMlp;
using ::curvd::core::testing::ZooMlpFixture;
using ::curvd::core::testing::ZooMlpFixtureSources;
using ::testing::HasSubstr;

LinearOperator HvpOf(Objective& objective) {
  return [&objective](const torch::Tensor& v) { return objective.Hvp(v); };
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

// Hvps applies each micro-batch's graph to every vector of the block, built
// per call or retained across calls: the products are those of one Hvp per
// vector.
TEST_P(ObjectiveTest, BlockProductsEqualOneProductPerVector) {
  constexpr int64_t kN = 37;
  TanhMlp model({6, 10, 4}, /*seed=*/32);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({kN, 6}, 33).to(device());
  const torch::Tensor labels = SeededLabels(kN, 4, 34).to(device());
  for (int64_t batch : {0, 8}) {
    auto sequential = Objective::Create(&model, x, labels,
                                        LossFunction::kCrossEntropy, batch);
    ASSERT_TRUE(sequential.ok()) << sequential.status();
    const int64_t p = sequential->num_parameters();
    const torch::Tensor block = SeededRandn({5, p}, 35).to(device());
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < 5; ++i) rows.push_back(*sequential->Hvp(block[i]));
    const torch::Tensor expected = torch::stack(rows);
    for (bool retain : {false, true}) {
      SCOPED_TRACE(absl::StrCat("micro-batch ", batch, ", retain ", retain));
      auto blocked = Objective::Create(&model, x, labels,
                                       LossFunction::kCrossEntropy, batch);
      ASSERT_TRUE(blocked.ok()) << blocked.status();
      blocked->set_retain_graphs(retain);
      EXPECT_LT(RelativeError(blocked->Hvps(block).value(), expected), 1e-13);
      // A second call, through the retained graphs when they are kept.
      EXPECT_LT(RelativeError(blocked->Hvps(block.narrow(0, 1, 3)).value(),
                              expected.narrow(0, 1, 3)),
                1e-13);
      EXPECT_LT(RelativeError(blocked->Hvp(block[4]).value(), expected[4]),
                1e-13);
      EXPECT_EQ(blocked->hvps(), 9);
      blocked->set_retain_graphs(false);
      EXPECT_LT(RelativeError(blocked->Hvp(block[0]).value(), expected[0]),
                1e-13);
    }
    EXPECT_EQ(
        sequential->Hvps(torch::ones({2, p + 1}, options())).status().code(),
        absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(sequential->Hvps(torch::ones({p}, options())).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

// With retained graphs on CUDA, Hessian products replay one device graph per
// vector (every micro-batch, a short last one included); on the CPU they run
// eagerly. Either way they equal the eager products of graphs rebuilt per
// call, also after LossAlong and a new forward seed free the graph.
TEST_P(ObjectiveTest, RetainedProductsReplayedEqualEagerProducts) {
  constexpr int64_t kN = 37;  // micro-batches 8, 8, 8, 8, 5
  TanhMlp model({6, 10, 4}, /*seed=*/60);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({kN, 6}, 61).to(device());
  const torch::Tensor labels = SeededLabels(kN, 4, 62).to(device());
  auto eager =
      Objective::Create(&model, x, labels, LossFunction::kCrossEntropy, 8);
  auto replayed =
      Objective::Create(&model, x, labels, LossFunction::kCrossEntropy, 8);
  ASSERT_TRUE(eager.ok()) << eager.status();
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  replayed->set_retain_graphs(true);
  const int64_t p = eager->num_parameters();
  const torch::Tensor block = SeededRandn({4, p}, 63).to(device());
  const torch::Tensor expected = eager->Hvps(block).value();

  EXPECT_LT(RelativeError(replayed->Hvps(block).value(), expected), 1e-13);
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_LT(RelativeError(replayed->Hvp(block[i]).value(), expected[i]),
              1e-13);
  }
  ASSERT_TRUE(replayed->LossAlong(block[0], {0.25}).ok());
  EXPECT_LT(RelativeError(replayed->Hvp(block[1]).value(), expected[1]),
            1e-13);
  if (DeviceGraphsAvailable(device())) {
    EXPECT_EQ(replayed->hvp_graph_note(),
              "hvp_graph: replayed (9 Hessian-vector products, one "
              "device-graph launch each)");
  } else {
    EXPECT_EQ(replayed->hvp_graph_note(),
              "hvp_graph: eager (no device graphs on cpu)");
  }
  EXPECT_EQ(eager->hvp_graph_note(),
            DeviceGraphsAvailable(device())
                ? "hvp_graph: eager (micro-batch graphs not retained)"
                : "hvp_graph: eager (no device graphs on cpu)");
  // Another seed frees the graph (the model has no randomness: same products).
  replayed->set_forward_seed(5);
  EXPECT_LT(RelativeError(replayed->Hvp(block[2]).value(), expected[2]),
            1e-13);
  EXPECT_EQ(replayed->hvps(), 10);
}

// A parameter the loss does not depend on has zero gradient and zero Hessian
// rows, in block products and in retained graphs.
TEST_P(ObjectiveTest, UnusedParameterHasZeroDerivatives) {
  LinearWithUnusedParameter model(3, 2, /*seed=*/36);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({7, 3}, 37).to(device());
  const torch::Tensor y = SeededRandn({7, 2}, 38).to(device());
  // L = 1/(N C) sum (x W^T - y)^2: the W block of H is 2/(N C) I_C (x) X^T X.
  const torch::Tensor xc = x.to(torch::kCPU);
  const torch::Tensor hessian_w =
      torch::kron(torch::eye(2, torch::kFloat64), xc.t().mm(xc)) * (2.0 / 14);
  for (bool retain : {false, true}) {
    SCOPED_TRACE(retain);
    auto objective = Objective::Create(&model, x, y, LossFunction::kMse, 3);
    ASSERT_TRUE(objective.ok()) << objective.status();
    objective->set_retain_graphs(retain);
    ASSERT_EQ(objective->num_parameters(), 8);
    const torch::Tensor block = SeededRandn({2, 8}, 39);
    const torch::Tensor hv = objective->Hvps(block.to(device())).value().cpu();
    EXPECT_LT(
        RelativeError(hv.narrow(1, 0, 6), block.narrow(1, 0, 6).mm(hessian_w)),
        1e-12);
    EXPECT_EQ(hv.narrow(1, 6, 2).abs().max().item<double>(), 0.0);
    EXPECT_EQ(objective->Gradient()->narrow(0, 6, 2).abs().max().item<double>(),
              0.0);
  }
}

// HVPs through a TorchScript module run by the unoptimised interpreter: equal
// to those of the zoo MLP with the same weights, also after the warm-up runs
// after which a profiling executor would have optimised the module, and
// through retained graphs.
TEST_P(ObjectiveTest, TorchScriptHvpEqualsZooHvp) {
  const std::optional<ZooMlpFixture> fixture = ZooMlpFixtureSources();
  if (!fixture) GTEST_SKIP() << "no Python TorchScript fixture";
  const ModelSource& scripted = fixture->scripted;
  const ModelSource& zoo = fixture->zoo;
  auto script_model = LoadModel(scripted);
  auto zoo_model = LoadModel(zoo);
  ASSERT_TRUE(script_model.ok()) << script_model.status();
  ASSERT_TRUE(zoo_model.ok()) << zoo_model.status();
  EXPECT_EQ((*script_model)->ParameterNames(), (*zoo_model)->ParameterNames());
  (*script_model)->To(device(), torch::kFloat64);
  (*zoo_model)->To(device(), torch::kFloat64);

  const torch::Tensor x = SeededRandn({24, 5}, 39).to(device());
  const torch::Tensor labels = SeededLabels(24, 3, 40).to(device());
  auto through_script = Objective::Create(script_model->get(), x, labels,
                                          LossFunction::kCrossEntropy, 10);
  auto through_zoo = Objective::Create(zoo_model->get(), x, labels,
                                       LossFunction::kCrossEntropy, 10);
  ASSERT_TRUE(through_script.ok()) << through_script.status();
  ASSERT_TRUE(through_zoo.ok()) << through_zoo.status();
  const int64_t p = through_zoo->num_parameters();
  for (uint64_t round = 0; round < 4; ++round) {
    SCOPED_TRACE(round);
    through_script->set_retain_graphs(round >= 2);
    const torch::Tensor v = SeededRandn({p}, 41 + round).to(device());
    EXPECT_LT(RelativeError(through_script->Hvp(v).value(),
                            through_zoo->Hvp(v).value()),
              1e-12);
  }
  EXPECT_NEAR(through_script->Loss().value(), through_zoo->Loss().value(),
              1e-12);
}

// Copies of the model's parameters, to compare with after moving them.
std::vector<torch::Tensor> Snapshot(Model& model) {
  std::vector<torch::Tensor> copies;
  for (const torch::Tensor& p : model.Parameters()) {
    copies.push_back(p.detach().clone());
  }
  return copies;
}

void ExpectBitForBit(Model& model, const std::vector<torch::Tensor>& copies) {
  const std::vector<torch::Tensor> now = model.Parameters();
  ASSERT_EQ(now.size(), copies.size());
  for (size_t i = 0; i < now.size(); ++i) {
    EXPECT_TRUE(torch::equal(now[i], copies[i])) << "parameter " << i;
  }
}

// LossAlong moves the block's parameters to w + t d: its losses are those of
// an objective on a model whose parameters were moved by hand, and the model
// is left exactly as it was.
TEST_P(ObjectiveTest, LossAlongEqualsHandPerturbedLosses) {
  constexpr int64_t kN = 37;
  LayeredTanhMlp model({6, 10, 4}, /*seed=*/42);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({kN, 6}, 43).to(device());
  const torch::Tensor labels = SeededLabels(kN, 4, 44).to(device());
  const std::vector<double> t = {-1.5, 0.0, 0.25, 2.0};
  for (const ParameterBlock& block :
       {ParameterBlock{}, ParameterBlock{{"layers.1.weight"}, {}}}) {
    SCOPED_TRACE(block.names.empty() ? "all" : block.names[0]);
    auto objective = Objective::Create(&model, x, labels,
                                       LossFunction::kCrossEntropy, 8, block);
    ASSERT_TRUE(objective.ok()) << objective.status();
    const torch::Tensor direction =
        SeededRandn({objective->num_parameters()}, 45).to(device());
    const std::vector<torch::Tensor> before = Snapshot(model);
    auto losses = objective->LossAlong(direction, t);
    ASSERT_TRUE(losses.ok()) << losses.status();
    ExpectBitForBit(model, before);
    ASSERT_EQ(losses->size(), t.size());

    // The block's parameters are the last ones when it is layers.1.weight.
    const std::vector<torch::Tensor> parameters = model.Parameters();
    const size_t first = block.names.empty() ? 0 : 2;
    for (size_t i = 0; i < t.size(); ++i) {
      {
        torch::NoGradGuard no_grad;
        int64_t offset = 0;
        for (size_t j = first; j < first + (block.names.empty() ? 4 : 1); ++j) {
          const int64_t numel = parameters[j].numel();
          parameters[j].copy_(before[j]).add_(
              direction.narrow(0, offset, numel).view(parameters[j].sizes()),
              t[i]);
          offset += numel;
        }
      }
      auto by_hand =
          Objective::Create(&model, x, labels, LossFunction::kCrossEntropy, 0);
      ASSERT_TRUE(by_hand.ok()) << by_hand.status();
      const double want = by_hand->Loss().value();
      EXPECT_NEAR((*losses)[i], want, 1e-12 * want) << "t = " << t[i];
      torch::NoGradGuard no_grad;
      for (size_t j = 0; j < parameters.size(); ++j) {
        parameters[j].copy_(before[j]);
      }
    }
    EXPECT_NE((*losses)[0], (*losses)[1]);
    EXPECT_EQ((*losses)[1], objective->Loss().value());
  }
}

// Moving the parameters invalidates retained graphs: LossAlong frees them and
// the next products rebuild them at the restored point.
TEST_P(ObjectiveTest, ProductsAfterLossAlongEqualThoseBefore) {
  constexpr int64_t kN = 21;
  TanhMlp model({5, 8, 3}, /*seed=*/46);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({kN, 5}, 47).to(device());
  const torch::Tensor labels = SeededLabels(kN, 3, 48).to(device());
  auto objective =
      Objective::Create(&model, x, labels, LossFunction::kCrossEntropy, 8);
  ASSERT_TRUE(objective.ok()) << objective.status();
  objective->set_retain_graphs(true);
  const int64_t p = objective->num_parameters();
  const torch::Tensor v = SeededRandn({p}, 49).to(device());
  const torch::Tensor hv = objective->Hvp(v).value();
  const torch::Tensor gv = objective->Ggnvp(v).value();

  const std::vector<torch::Tensor> before = Snapshot(model);
  ASSERT_TRUE(objective->LossAlong(v, {0.5, -3.0}).ok());
  ExpectBitForBit(model, before);
  EXPECT_TRUE(objective->retain_graphs());
  EXPECT_TRUE(torch::equal(objective->Hvp(v).value(), hv));
  EXPECT_TRUE(torch::equal(objective->Ggnvp(v).value(), gv));
}

TEST_P(ObjectiveTest, WritingIntoTheParametersMovesRetainedProducts) {
  constexpr int64_t kN = 12;
  TanhMlp model({4, 6, 3}, /*seed=*/21);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({kN, 4}, 22).to(device());
  const torch::Tensor labels = SeededLabels(kN, 3, 23).to(device());
  auto objective = Objective::Create(&model, x, labels,
                                     LossFunction::kCrossEntropy, 4);
  ASSERT_TRUE(objective.ok()) << objective.status();
  objective->set_retain_graphs(true);
  const torch::Tensor v =
      SeededRandn({objective->num_parameters()}, 24).to(device());
  const torch::Tensor before = objective->Hvp(v).value();
  {
    torch::NoGradGuard no_grad;
    for (const torch::Tensor& p : objective->block_parameters()) p.mul_(2.0);
  }
  // The graphs of the old point are rebuilt, not replayed at it.
  auto fresh = Objective::Create(&model, x, labels,
                                 LossFunction::kCrossEntropy, 4);
  const torch::Tensor expected = fresh->Hvp(v).value();
  const torch::Tensor after = objective->Hvp(v).value();
  EXPECT_LT(RelativeError(after, expected), 1e-12);
  EXPECT_GT(RelativeError(before, expected), 1e-3);
}

TEST_P(ObjectiveTest, LossAlongRejectsWrongSizeAndNamesNonFiniteT) {
  LinearModel model(4, 2, /*seed=*/50);
  model.To(device(), torch::kFloat64);
  auto objective = Objective::Create(
      &model, SeededRandn({6, 4}, 51).to(device()),
      SeededRandn({6, 2}, 52).to(device()), LossFunction::kMse, 0);
  ASSERT_TRUE(objective.ok()) << objective.status();
  const std::vector<torch::Tensor> before = Snapshot(model);
  EXPECT_EQ(
      objective->LossAlong(torch::ones({9}, options()), {1.0}).status().code(),
      absl::StatusCode::kInvalidArgument);
  // (x (W + t D)^T)^2 overflows at t = 1e200 but not at t = 1.
  const absl::Status overflow =
      objective->LossAlong(torch::ones({8}, options()), {1.0, 1e200}).status();
  EXPECT_EQ(overflow.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(overflow.message(), HasSubstr("t = 1e+200"));
  ExpectBitForBit(model, before);
  EXPECT_TRUE(objective->LossAlong(torch::ones({8}, options()), {})->empty());
}

CURVD_INSTANTIATE_DEVICE_TEST(ObjectiveTest);

}  // namespace
}  // namespace curvd::core

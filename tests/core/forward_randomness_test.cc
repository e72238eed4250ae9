// Randomness in the forward pass (dropout in train mode): fixed per
// measurement by the forward seed, so that the operator is the Hessian of one
// sampled loss, and detected when it comes from a generator curvd does not
// seed (operator_check.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/api/engine.h"
#include "core/api/measurement.h"
#include "core/measurements/measurement_plan.h"
#include "core/measurements/operator_check.h"
#include "core/objective/linear_operator.h"
#include "core/objective/objective.h"
#include "tests/core/engine_sources.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::DropoutTanhMlp;
using ::curvd::core::testing::EngineDeviceTest;
using ::curvd::core::testing::MatrixColumns;
using ::curvd::core::testing::Of;
using ::curvd::core::testing::RelativeError;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::TanhMlp;
using ::testing::HasSubstr;

constexpr int64_t kSamples = 12;
constexpr int64_t kMicroBatch = 4;  // three micro-batches
const std::vector<int64_t> kWidths = {3, 6, 2};
constexpr int64_t kParameters = 3 * 6 + 6 + 6 * 2 + 2;

// The same, but its masks come from a generator of its own, which advances
// at every forward pass: randomness curvd cannot fix.
class OwnGeneratorDropoutMlp : public TanhMlp {
 public:
  using TanhMlp::TanhMlp;
  torch::Tensor Forward(const torch::Tensor& x) override {
    torch::Tensor h = x;
    for (size_t i = 0; i < parameters_.size(); i += 2) {
      h = torch::addmm(parameters_[i + 1], h, parameters_[i].t());
      if (i + 2 < parameters_.size()) {
        const torch::Tensor keep =
            torch::bernoulli(torch::full(h.sizes(), 0.5, torch::kFloat64),
                             generator_)
                .to(h.options());
        h = torch::tanh(h) * keep * 2.0;
      }
    }
    return h;
  }

 private:
  at::Generator generator_ = SeededGenerator(99);
};

class ForwardRandomnessTest : public DeviceTest {
 protected:
  // A float64 MSE objective of `model` in train mode on kSamples samples in
  // micro-batches of `micro_batch`, forward seed `seed`.
  Objective Make(Model& model, int64_t micro_batch, uint64_t seed,
                 bool retain_graphs = false) {
    model.To(device(), torch::kFloat64);
    model.SetTrainMode(true);
    absl::StatusOr<Objective> objective = Objective::Create(
        &model, SeededRandn({kSamples, kWidths.front()}, 2).to(device()),
        SeededRandn({kSamples, kWidths.back()}, 3).to(device()),
        LossFunction::kMse, micro_batch);
    EXPECT_TRUE(objective.ok()) << objective.status();
    objective->set_forward_seed(seed);
    objective->set_retain_graphs(retain_graphs);
    return *std::move(objective);
  }

  static MeasurementRequest TrainModeRequest(uint64_t seed) {
    MeasurementRequest request;
    request.objective.loss = LossFunction::kMse;
    request.objective.micro_batch_size = kMicroBatch;
    request.objective.precision = Precision::kFloat64;
    request.objective.train_mode = true;
    request.objective.forward_seed = seed;
    return request;
  }
};

// Before, each HVP without retained graphs drew new masks: the assembled
// "Hessian" had an asymmetry of order 0.5 and was symmetrised silently. Now it
// is the Hessian of the loss with one mask per micro-batch: symmetric to
// rounding, and equal to that of graphs built once (each with its masks) and
// kept for every column.
TEST_P(ForwardRandomnessTest, ExactHessianIsThatOfOneFixedMaskLoss) {
  DropoutTanhMlp model(kWidths, 7);
  Objective rebuilding = Make(model, kMicroBatch, 11);
  MeasurementRequest request = TrainModeRequest(11);
  request.Add<ExactHessianMethod>().options.return_matrix = true;
  MeasurementResult result;
  ASSERT_TRUE(
      RunMeasurementPlan(rebuilding, request, Progress(), &result).ok());
  const ExactHessianResult& exact = result.Find<ExactHessianMethod>()->result;
  EXPECT_LT(exact.asymmetry, 1e-12);
  ASSERT_TRUE(result.operator_check_difference.has_value());
  EXPECT_LT(*result.operator_check_difference, 1e-13);

  DropoutTanhMlp same(kWidths, 7);
  Objective retaining = Make(same, kMicroBatch, 11, /*retain_graphs=*/true);
  const torch::Tensor fixed_masks =
      MatrixColumns([&](const torch::Tensor& v) { return retaining.Hvp(v); },
                    kParameters, options());
  const torch::Tensor assembled =
      torch::tensor(exact.matrix, torch::kFloat64).view({kParameters, -1});
  EXPECT_LT(RelativeError(assembled, fixed_masks), 1e-12);

  // The masks matter: the eval-mode Hessian is another matrix.
  DropoutTanhMlp eval(kWidths, 7);
  Objective eval_objective = Make(eval, kMicroBatch, 11);
  eval.SetTrainMode(false);
  const torch::Tensor without_dropout = MatrixColumns(
      [&](const torch::Tensor& v) { return eval_objective.Hvp(v); },
      kParameters, options());
  EXPECT_GT(RelativeError(fixed_masks, without_dropout), 1e-2);
}

// The loss, the gradient and the products of one seed are the same in every
// objective of that seed, and another seed samples another loss.
TEST_P(ForwardRandomnessTest, SameSeedSameNumbersOtherSeedOthers) {
  const torch::Tensor v = SeededRandn({kParameters}, 5).to(device());
  struct Numbers {
    double loss;
    torch::Tensor gradient;
    torch::Tensor hvp;
  };
  auto numbers = [&](uint64_t seed) {
    DropoutTanhMlp model(kWidths, 7);
    Objective objective = Make(model, kMicroBatch, seed);
    // Draws between the objective's forward passes do not move its masks.
    torch::rand({10}, options());
    Numbers n{objective.Loss().value(), objective.Gradient().value(), {}};
    torch::rand({10}, options());
    n.hvp = objective.Hvp(v).value();
    return n;
  };
  const Numbers first = numbers(11);
  const Numbers again = numbers(11);
  const Numbers other = numbers(12);
  EXPECT_EQ(first.loss, again.loss);
  EXPECT_TRUE(torch::equal(first.gradient, again.gradient));
  EXPECT_TRUE(torch::equal(first.hvp, again.hvp));
  EXPECT_GT(std::abs(first.loss - other.loss), 1e-3 * first.loss);
  EXPECT_GT(RelativeError(other.hvp, first.hvp), 1e-2);
}

// Micro-batch b's stream is word b of the seed's splitmix64 stream.
TEST(ForwardSeedTest, IsTheSplitMix64StreamOfTheSeed) {
  const torch::Tensor words = SplitMix64Words(11, 3, torch::kCPU);
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_EQ(Objective::ForwardSeed(11, b),
              static_cast<uint64_t>(words[b].item<int64_t>()));
  }
  EXPECT_NE(Objective::ForwardSeed(11, 0), Objective::ForwardSeed(12, 0));
}

// A model drawing from its own generator: every product is with another
// matrix. The plan refuses to measure it, with graphs retained or not (the
// check rebuilds them), naming the likely cause.
TEST_P(ForwardRandomnessTest, UncontrolledRandomnessFailsWithTheCause) {
  for (const bool retain : {false, true}) {
    SCOPED_TRACE(retain ? "graphs retained" : "graphs rebuilt");
    OwnGeneratorDropoutMlp model(kWidths, 7);
    Objective objective = Make(model, kMicroBatch, 11, retain);
    MeasurementRequest request = TrainModeRequest(11);
    request.Add<SharpnessMethod>();
    MeasurementResult result;
    const absl::Status status =
        RunMeasurementPlan(objective, request, Progress(), &result);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    EXPECT_THAT(status.message(), HasSubstr("not a fixed matrix"));
    EXPECT_THAT(status.message(), HasSubstr("generator of the model's own"));
    EXPECT_EQ(objective.retain_graphs(), retain);
  }
}

// Train mode costs the check's two products; eval mode is not checked.
TEST_P(ForwardRandomnessTest, OnlyTrainModeIsChecked) {
  int64_t hvps[2];
  for (const bool train : {false, true}) {
    DropoutTanhMlp model(kWidths, 7);
    Objective objective = Make(model, kMicroBatch, 11);
    model.SetTrainMode(train);
    MeasurementRequest request = TrainModeRequest(11);
    request.objective.train_mode = train;
    request.Add<SharpnessMethod>().options.max_iterations = 5;
    MeasurementResult result;
    ASSERT_TRUE(
        RunMeasurementPlan(objective, request, Progress(), &result).ok());
    EXPECT_EQ(result.operator_check_difference.has_value(), train);
    hvps[train] = objective.hvps();
  }
  EXPECT_EQ(hvps[1], hvps[0] + 2);
}

CURVD_INSTANTIATE_DEVICE_TEST(ForwardRandomnessTest);

// Through the engine, a TorchScript nn.Dropout in train mode on the CPU in
// micro-batches (graphs rebuilt at every product): the exact Hessian is
// symmetric to rounding, the result records the seed, and the same seed gives
// the same spectrum where another seed gives another.
class ForwardSeedEngineTest : public EngineDeviceTest {
 protected:
  absl::StatusOr<MeasurementResult> ExactHessian(const ModelSource& source,
                                                 uint64_t forward_seed) {
    MeasurementRequest request;
    request.objective.loss = LossFunction::kMse;
    request.objective.micro_batch_size = 16;
    request.objective.precision = Precision::kFloat64;
    request.objective.train_mode = true;
    request.objective.forward_seed = forward_seed;
    request.Add<ExactHessianMethod>();
    return Measure(request, source, 1);
  }
};

TEST_P(ForwardSeedEngineTest, DropoutHessianIsSymmetricAndReproducible) {
  ModelSource source;
  source.kind = ModelSource::Kind::kTorchScript;
  source.archive_path = std::string(CURVD_CORE_FIXTURE_DIR) + "/dropout_mlp.pt";
  if (!std::ifstream(source.archive_path)) {
    GTEST_SKIP() << "no Python TorchScript fixture at " << source.archive_path;
  }
  const absl::StatusOr<MeasurementResult> first = ExactHessian(source, 5);
  ASSERT_TRUE(first.ok()) << first.status();
  const ExactHessianResult& exact = Of<ExactHessianMethod>(first);
  EXPECT_LT(exact.asymmetry, 1e-12);
  EXPECT_EQ(first->forward_seed, 5u);
  EXPECT_TRUE(first->train_mode);
  ASSERT_TRUE(first->operator_check_difference.has_value());
  EXPECT_LT(*first->operator_check_difference, 1e-13);

  const absl::StatusOr<MeasurementResult> again = ExactHessian(source, 5);
  const absl::StatusOr<MeasurementResult> other = ExactHessian(source, 6);
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(again->loss, first->loss);
  const std::vector<double>& values = exact.eigenvalues;
  const std::vector<double>& same = Of<ExactHessianMethod>(again).eigenvalues;
  const std::vector<double>& others = Of<ExactHessianMethod>(other).eigenvalues;
  ASSERT_EQ(same.size(), values.size());
  ASSERT_EQ(others.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_NEAR(same[i], values[i], 1e-12 * std::abs(values.back()));
  }
  EXPECT_GT(std::abs(others.back() - values.back()),
            1e-3 * std::abs(values.back()));
}

CURVD_INSTANTIATE_DEVICE_TEST(ForwardSeedEngineTest);

// The check itself, on operators that are, are nearly (rounding), and are not
// fixed.
TEST(CheckOperatorIsFixedTest, PassesRoundingAndFailsARandomOperator) {
  const torch::TensorOptions options = torch::kFloat32;
  const torch::Tensor a = SeededRandn({8, 8}, 1).to(torch::kFloat32);
  const LinearOperator fixed = [&](const torch::Tensor& v) {
    return absl::StatusOr<torch::Tensor>(a.mv(v));
  };
  EXPECT_EQ(CheckOperatorIsFixed(fixed, 8, options, 3).value(), 0.0);

  // Reordered sums: each product off by a few hundred eps.
  const double eps = std::numeric_limits<float>::epsilon();
  int calls = 0;
  const LinearOperator reordered = [&](const torch::Tensor& v) {
    const double wobble = (++calls % 2 == 0 ? 300 : -300) * eps;
    return absl::StatusOr<torch::Tensor>(a.mv(v) * (1 + wobble));
  };
  const absl::StatusOr<double> rounding =
      CheckOperatorIsFixed(reordered, 8, options, 3);
  ASSERT_TRUE(rounding.ok()) << rounding.status();
  EXPECT_GT(*rounding, 0.0);
  EXPECT_LT(*rounding, FixedOperatorTolerance(options));

  at::Generator noise = SeededGenerator(4);
  const LinearOperator random = [&](const torch::Tensor& v) {
    const torch::Tensor mask =
        torch::bernoulli(torch::full({8}, 0.5), noise).to(torch::kFloat32);
    return absl::StatusOr<torch::Tensor>((a * mask).mv(v));
  };
  const absl::StatusOr<double> status =
      CheckOperatorIsFixed(random, 8, options, 3);
  EXPECT_EQ(status.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.status().message()),
              HasSubstr("two products with the same vector differ"));
  EXPECT_NEAR(FixedOperatorTolerance(options), std::sqrt(eps), 1e-12);
}

}  // namespace
}  // namespace curvd::core

// The GOP's fast path (core/measurements/gop_fast_path.h) against the generic
// path on the zoo MLP: the same Gram matrices, metrics and eigenvectors
// (TorchScript models: gop_torchscript_fast_path_test.cc).
#include "core/measurements/gop_fast_path.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/data/model.h"
#include "core/measurements/gop.h"
#include "core/objective/objective.h"
#include "tests/core/gop_expectations.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::Everything;
using ::curvd::core::testing::ExpectSameGradientTransposeTimes;
using ::curvd::core::testing::ExpectSameResult;
using ::curvd::core::testing::SeededLabels;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::WithPath;
using ::testing::HasSubstr;

constexpr int64_t kSamples = 9;

class GopFastPathTest : public DeviceTest {
 protected:
  // The zoo MLP 4 -> 6 -> 5 -> 3 (fc0, fc1, fc2; M = 83) with LibTorch's
  // seeded default initialisation, float64, and kSamples samples.
  void MakeZoo(const std::string& activation, LossFunction loss) {
    ModelSource source;
    source.kind = ModelSource::Kind::kZoo;
    source.zoo.layer_widths = {4, 6, 5, 3};
    source.zoo.activation = activation;
    torch::manual_seed(11);
    auto model = LoadModel(source, torch::kFloat64);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
    model_->To(device(), torch::kFloat64);
    inputs_ = SeededRandn({kSamples, 4}, 12).to(device());
    targets_ = loss == LossFunction::kCrossEntropy
                   ? SeededLabels(kSamples, 3, 13).to(device())
                   : SeededRandn({kSamples, 3}, 13).to(device());
    loss_ = loss;
  }
  // Micro-batches of 4: two full and a short one.
  Objective MakeObjective(const ParameterBlock& block = {}) {
    auto objective =
        Objective::Create(model_.get(), inputs_, targets_, loss_, 4, block);
    EXPECT_TRUE(objective.ok()) << objective.status();
    return std::move(objective).value();
  }
  // MeasureGop with path auto, which must take the fast path, and with path
  // generic: the same result.
  void ExpectFastEqualsGeneric(Objective& objective,
                               const GopOptions& options) {
    auto fast = MeasureGop(objective, options, Progress());
    auto generic =
        MeasureGop(objective, WithPath(options, GopPath::kGeneric), Progress());
    ASSERT_TRUE(fast.ok()) << fast.status();
    ASSERT_TRUE(generic.ok()) << generic.status();
    EXPECT_EQ(generic->path, "generic");
    EXPECT_EQ(fast->path, options.variant == GopVariant::kMeanGradient
                              ? "generic"
                              : "fast");
    ExpectSameResult(*fast, *generic);
  }

  std::unique_ptr<Model> model_;
  torch::Tensor inputs_;
  torch::Tensor targets_;
  LossFunction loss_ = LossFunction::kCrossEntropy;
};

TEST_P(GopFastPathTest, GramMatricesEqualTheGenericOnes) {
  for (const LossFunction loss :
       {LossFunction::kCrossEntropy, LossFunction::kMse}) {
    SCOPED_TRACE(loss == LossFunction::kMse ? "mse" : "cross-entropy");
    MakeZoo("tanh", loss);
    Objective objective = MakeObjective();
    const std::vector<GopGroup> groups = GopGroups(objective);
    ASSERT_EQ(groups.size(), 3);
    std::vector<int64_t> samples = {0, 2, 3, 5, 6, 8};
    auto generic = GopGramMatrices(objective, samples, groups, int64_t{1} << 20,
                                   Progress());
    ASSERT_TRUE(generic.ok()) << generic.status();
    auto features = ComputeLinearGopFeatures(objective, samples, Progress());
    ASSERT_TRUE(features.ok()) << features.status();
    ASSERT_EQ(features->layers.size(), 3);
    EXPECT_EQ(features->layers[1].inputs.sizes(), (c10::IntArrayRef{6, 6}));
    EXPECT_EQ(features->layers[1].output_gradients.sizes(),
              (c10::IntArrayRef{6, 5}));
    auto fast = LinearGopGramMatrices(*features, groups);
    ASSERT_TRUE(fast.ok()) << fast.status();
    EXPECT_FALSE(fast->gradients.defined());
    const double scale = generic->whole.abs().max().item<double>();
    EXPECT_LT((fast->whole - generic->whole).abs().max().item<double>(),
              1e-12 * scale);
    ASSERT_EQ(fast->groups.size(), 3);
    for (size_t g = 0; g < 3; ++g) {
      EXPECT_LT(
          (fast->groups[g] - generic->groups[g]).abs().max().item<double>(),
          1e-12 * scale)
          << groups[g].name;
    }
    // G^T w against the generic path's retained G.
    ExpectSameGradientTransposeTimes(
        *features, generic->gradients, SeededRandn({6, 2}, 14).to(device()));
  }
}

TEST_P(GopFastPathTest, EveryVariantEqualsTheGenericPath) {
  for (const std::string activation : {"tanh", "relu"}) {
    for (const GopVariant variant :
         {GopVariant::kEmpiricalFisher, GopVariant::kGradientCovariance,
          GopVariant::kMeanGradient}) {
      SCOPED_TRACE(
          absl::StrCat(activation, " variant ", static_cast<int>(variant)));
      MakeZoo(activation, LossFunction::kCrossEntropy);
      Objective objective = MakeObjective();
      ExpectFastEqualsGeneric(objective, Everything(variant, 4));
    }
  }
}

TEST_P(GopFastPathTest, MseAndASeededSubset) {
  MakeZoo("tanh", LossFunction::kMse);
  Objective objective = MakeObjective();
  GopOptions options = Everything(GopVariant::kGradientCovariance, 3);
  options.num_samples = 7;
  options.seed = 5;
  ExpectFastEqualsGeneric(objective, options);
}

// Blocks of one layer, of a weight alone and of a bias alone: the fast path
// measures any block of Linear weights and biases.
TEST_P(GopFastPathTest, BlocksOfLayersAndOfSingleParameters) {
  MakeZoo("tanh", LossFunction::kCrossEntropy);
  ParameterBlock layer;
  layer.prefixes = {"fc1."};
  ParameterBlock parts;
  parts.names = {"fc0.weight", "fc2.bias"};
  for (const ParameterBlock& block : {layer, parts}) {
    Objective objective = MakeObjective(block);
    const GopOptions options = Everything(GopVariant::kEmpiricalFisher, 3);
    ExpectFastEqualsGeneric(objective, options);
    auto result = MeasureGop(objective, options, Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->num_parameters, block.names.empty() ? 6 * 5 + 5 : 24 + 3);
    EXPECT_EQ(result->layers.size(), block.names.empty() ? 1 : 2);
  }
}

TEST_P(GopFastPathTest, ForcedFastIsRefusedWhereItCannotRun) {
  MakeZoo("tanh", LossFunction::kCrossEntropy);
  Objective objective = MakeObjective();
  GopOptions options;
  options.top_k = 3;
  options.path = GopPath::kFast;
  auto forced = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ(forced->path, "fast");

  // The features (N x (4+6 + 6+5 + 5+3) = 9 x 29 floats) over the cap: auto
  // falls back to the generic path, fast is refused naming the cap.
  options.max_gradient_floats = kSamples * 29 - 1;
  auto refused = MeasureGop(objective, options, Progress());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("gop.max_gradient_floats"));
  auto fallback =
      MeasureGop(objective, WithPath(options, GopPath::kAuto), Progress());
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  EXPECT_EQ(fallback->path, "generic");

  options = GopOptions();
  options.path = GopPath::kFast;
  options.variant = GopVariant::kMeanGradient;
  auto mean = MeasureGop(objective, options, Progress());
  EXPECT_EQ(mean.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mean.status().message(), HasSubstr("mean-gradient"));
}

TEST_P(GopFastPathTest, CancelledBeforeTheFirstMicroBatch) {
  MakeZoo("tanh", LossFunction::kCrossEntropy);
  Objective objective = MakeObjective();
  Progress progress;
  progress.cancelled = [] { return true; };
  GopOptions options;
  options.path = GopPath::kFast;
  auto result = MeasureGop(objective, options, progress);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(result.status().message(), HasSubstr("micro-batch"));
}

CURVD_INSTANTIATE_DEVICE_TEST(GopFastPathTest);

}  // namespace
}  // namespace curvd::core

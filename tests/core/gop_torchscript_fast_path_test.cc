// The GOP's fast path on TorchScript models (core/data/torchscript_recording.h,
// core/measurements/gop_fast_path.h) against the generic path: an MLP (and the
// zoo MLP of the same weights), the seed Transformer W3 (Embedding, an added
// position parameter, Linear layers with and without bias), and a conv net,
// whose conv layer the fast path does not cover.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/data/model.h"
#include "core/measurements/gop.h"
#include "core/measurements/gop_fast_path.h"
#include "core/objective/objective.h"
#include "tests/core/gop_expectations.h"
#include "tests/core/toy_models.h"
#include "tests/core/zoo_mlp_fixture.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::Everything;
using ::curvd::core::testing::ExpectSameGradientTransposeTimes;
using ::curvd::core::testing::ExpectSameResult;
using ::curvd::core::testing::SeededLabels;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::WithPath;
using ::curvd::core::testing::ZooMlpFixtureSources;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Kind = RecordedLayer::Kind;

constexpr int64_t kSamples = 9;

// The layers as "weight/bias:kind" strings, for matchers.
std::vector<std::string> Describe(const std::vector<RecordedLayer>& layers) {
  std::vector<std::string> out;
  for (const RecordedLayer& layer : layers) {
    out.push_back(layer.weight + "/" + layer.bias + ":" +
                  std::to_string(static_cast<int>(layer.kind)));
  }
  return out;
}

// Sample pairs (a, b) of residues mod 5 with their sums' residues.
struct TokenPairs {
  torch::Tensor pairs;    // [kSamples, 2] int64
  torch::Tensor targets;  // [kSamples] int64
};
TokenPairs SeededTokenPairs(uint64_t seed) {
  const torch::Tensor pairs =
      SeededLabels(2 * kSamples, 5, seed).reshape({kSamples, 2});
  return {pairs, pairs.sum(1).remainder(5)};
}

class GopTorchScriptFastPathTest : public DeviceTest {
 protected:
  // The fixture archive `name` of tests/core/CMakeLists.txt in float64 on the
  // device; false (the test skips) where it was not written.
  bool Load(const std::string& name) {
    ModelSource source;
    source.kind = ModelSource::Kind::kTorchScript;
    source.archive_path = std::string(CURVD_CORE_FIXTURE_DIR) + "/" + name;
    if (!std::ifstream(source.archive_path)) return false;
    return Load(source);
  }
  bool Load(const ModelSource& source) {
    auto model = LoadModel(source, torch::kFloat64);
    EXPECT_TRUE(model.ok()) << model.status();
    if (!model.ok()) return false;
    model_ = *std::move(model);
    model_->To(device(), torch::kFloat64);
    return true;
  }
  // Micro-batches of 4: two full and a short one.
  Objective MakeObjective(const torch::Tensor& inputs,
                          const torch::Tensor& targets,
                          const ParameterBlock& block = {}) {
    auto objective = Objective::Create(model_.get(), inputs.to(device()),
                                       targets.to(device()),
                                       LossFunction::kCrossEntropy, 4, block);
    EXPECT_TRUE(objective.ok()) << objective.status();
    return std::move(objective).value();
  }
  // Path auto, which must take `path`, against path generic: the same
  // result; auto's result.
  GopResult ExpectAutoEqualsGeneric(Objective& objective,
                                    const GopOptions& options,
                                    const std::string& path = "fast") {
    auto automatic = MeasureGop(objective, options, Progress());
    auto generic =
        MeasureGop(objective, WithPath(options, GopPath::kGeneric), Progress());
    EXPECT_TRUE(automatic.ok()) << automatic.status();
    EXPECT_TRUE(generic.ok()) << generic.status();
    if (!automatic.ok() || !generic.ok()) return GopResult();
    EXPECT_EQ(automatic->path, path);
    ExpectSameResult(*automatic, *generic);
    return *automatic;
  }

  std::unique_ptr<Model> model_;
};

TEST_P(GopTorchScriptFastPathTest, MlpEqualsTheGenericPathAndTheZoo) {
  const auto fixture = ZooMlpFixtureSources();
  if (!fixture) GTEST_SKIP() << "no Python TorchScript fixture";
  ASSERT_TRUE(Load(fixture->scripted));
  EXPECT_THAT(Describe(model_->RecordedLayers()),
              ElementsAre("fc0.weight/fc0.bias:0", "fc1.weight/fc1.bias:0"));
  const torch::Tensor inputs = SeededRandn({kSamples, 5}, 21);
  const torch::Tensor labels = SeededLabels(kSamples, 3, 22);
  for (const GopVariant variant :
       {GopVariant::kEmpiricalFisher, GopVariant::kGradientCovariance}) {
    SCOPED_TRACE(static_cast<int>(variant));
    ASSERT_TRUE(Load(fixture->scripted));
    Objective scripted = MakeObjective(inputs, labels);
    const GopResult fast =
        ExpectAutoEqualsGeneric(scripted, Everything(variant, 4));
    ASSERT_TRUE(Load(fixture->zoo));
    Objective zoo = MakeObjective(inputs, labels);
    auto from_zoo = MeasureGop(zoo, Everything(variant, 4), Progress());
    ASSERT_TRUE(from_zoo.ok()) << from_zoo.status();
    EXPECT_EQ(from_zoo->path, "fast");
    ExpectSameResult(fast, *from_zoo);
  }
}

// Nested submodules (body.0.linear, ...) and a buffer in the forward.
TEST_P(GopTorchScriptFastPathTest, NestedMlpEqualsTheGenericPath) {
  if (!Load("scripted_mlp.pt")) GTEST_SKIP() << "no TorchScript fixture";
  EXPECT_EQ(model_->RecordedLayers().size(), 3);
  Objective objective = MakeObjective(SeededRandn({kSamples, 5}, 23),
                                      SeededLabels(kSamples, 3, 24));
  ExpectAutoEqualsGeneric(objective,
                          Everything(GopVariant::kGradientCovariance, 3));
}

// W3: token ids [N, 3] (a, b, '=') as floats.
class GopTransformerTest : public GopTorchScriptFastPathTest {
 protected:
  bool MakeTransformer() {
    if (!Load("gop_transformer.pt")) return false;
    const TokenPairs tokens = SeededTokenPairs(25);
    inputs_ =
        torch::cat({tokens.pairs, torch::full({kSamples, 1}, 5, torch::kInt64)},
                   1)
            .to(torch::kFloat64);
    targets_ = tokens.targets;
    return true;
  }
  torch::Tensor inputs_;
  torch::Tensor targets_;
};

TEST_P(GopTransformerTest, RecordsEveryParameter) {
  if (!MakeTransformer()) GTEST_SKIP() << "no TorchScript fixture";
  EXPECT_THAT(
      Describe(model_->RecordedLayers()),
      ElementsAre("position/:2", "embed.weight/:1", "qkv.weight/:0",
                  "attention_out.weight/:0", "mlp_in.weight/mlp_in.bias:0",
                  "mlp_out.weight/mlp_out.bias:0", "unembed.weight/:0"));
}

TEST_P(GopTransformerTest, GramMatricesEqualTheGenericOnes) {
  if (!MakeTransformer()) GTEST_SKIP() << "no TorchScript fixture";
  Objective objective = MakeObjective(inputs_, targets_);
  const std::vector<GopGroup> groups = GopGroups(objective);
  ASSERT_EQ(groups.size(), 7);
  const std::vector<int64_t> samples = {0, 1, 3, 4, 5, 8};
  auto generic =
      GopGramMatrices(objective, samples, groups, int64_t{1} << 20, Progress());
  ASSERT_TRUE(generic.ok()) << generic.status();
  auto features = ComputeLinearGopFeatures(objective, samples, Progress());
  ASSERT_TRUE(features.ok()) << features.status();
  // Tokens kept: qkv's inputs [N, T, d] (after position, embed).
  EXPECT_EQ(features->layers[2].inputs.sizes(), (c10::IntArrayRef{6, 3, 8}));
  auto fast = LinearGopGramMatrices(*features, groups);
  ASSERT_TRUE(fast.ok()) << fast.status();
  for (size_t g = 0; g <= groups.size(); ++g) {
    const torch::Tensor& expected =
        g < groups.size() ? generic->groups[g] : generic->whole;
    const torch::Tensor& got =
        g < groups.size() ? fast->groups[g] : fast->whole;
    EXPECT_LT((got - expected).abs().max().item<double>(),
              1e-12 * expected.abs().max().item<double>())
        << (g < groups.size() ? groups[g].name : "whole");
  }
  ExpectSameGradientTransposeTimes(
      *features, generic->gradients, SeededRandn({6, 3}, 26).to(device()));
}

TEST_P(GopTransformerTest, EveryVariantEqualsTheGenericPath) {
  if (!MakeTransformer()) GTEST_SKIP() << "no TorchScript fixture";
  for (const GopVariant variant :
       {GopVariant::kEmpiricalFisher, GopVariant::kGradientCovariance}) {
    SCOPED_TRACE(static_cast<int>(variant));
    Objective objective = MakeObjective(inputs_, targets_);
    ExpectAutoEqualsGeneric(objective, Everything(variant, 4));
  }
}

// nn.Embedding on int64 ids, flattened into an MLP.
TEST_P(GopTorchScriptFastPathTest, TokenMlpEqualsTheGenericPath) {
  if (!Load("token_mlp.pt")) GTEST_SKIP() << "no TorchScript fixture";
  EXPECT_EQ(model_->RecordedLayers().front().kind, Kind::kEmbedding);
  const TokenPairs tokens = SeededTokenPairs(27);
  Objective objective = MakeObjective(tokens.pairs, tokens.targets);
  ExpectAutoEqualsGeneric(objective,
                          Everything(GopVariant::kEmpiricalFisher, 3));
}

// A block with the conv layer takes the generic path under auto and is
// refused under fast, naming it; the head alone takes the fast path.
TEST_P(GopTorchScriptFastPathTest, AConvLayerTakesTheGenericPath) {
  if (!Load("gop_conv.pt")) GTEST_SKIP() << "no TorchScript fixture";
  EXPECT_THAT(Describe(model_->RecordedLayers()),
              ElementsAre("head.weight/head.bias:0"));
  const torch::Tensor inputs = SeededRandn({kSamples, 1, 4, 4}, 28);
  const torch::Tensor labels = SeededLabels(kSamples, 3, 29);
  Objective whole = MakeObjective(inputs, labels);
  const GopOptions options = Everything(GopVariant::kEmpiricalFisher, 3);
  auto automatic = MeasureGop(whole, options, Progress());
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(automatic->path, "generic");
  auto forced =
      MeasureGop(whole, WithPath(options, GopPath::kFast), Progress());
  EXPECT_EQ(forced.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(forced.status().message(), HasSubstr("'conv.weight'"));
  ParameterBlock head;
  head.prefixes = {"head."};
  Objective only_head = MakeObjective(inputs, labels, head);
  ExpectAutoEqualsGeneric(only_head, options);
}

// In train mode the model records nothing: auto takes the generic path, fast
// is refused saying why.
TEST_P(GopTorchScriptFastPathTest, TrainModeTakesTheGenericPath) {
  if (!Load("zoo_mlp.pt")) GTEST_SKIP() << "no TorchScript fixture";
  model_->SetTrainMode(true);
  Objective objective = MakeObjective(SeededRandn({kSamples, 5}, 30),
                                      SeededLabels(kSamples, 3, 31));
  GopOptions options;
  options.top_k = 2;
  auto automatic = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(automatic->path, "generic");
  auto refused =
      MeasureGop(objective, WithPath(options, GopPath::kFast), Progress());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("records no layers"));
}

CURVD_INSTANTIATE_DEVICE_TEST(GopTorchScriptFastPathTest);
CURVD_INSTANTIATE_DEVICE_TEST(GopTransformerTest);

}  // namespace
}  // namespace curvd::core

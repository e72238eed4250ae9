// The GOP's fast path on TorchScript models (core/data/torchscript_recording.h,
// core/measurements/gop_fast_path.h) against the generic path: an MLP (and the
// zoo MLP of the same weights), the seed Transformer W3 (Embedding, an added
// position parameter, Linear layers with and without bias), a two-layer
// LayerNorm Transformer, a conv net, and a conv net with BatchNorm, which the
// fast path does not cover.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
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
  // Path auto, which must take the generic path, and path fast, which must
  // be refused with InvalidArgument saying each of `reasons`.
  void ExpectGenericUnlessForced(Objective& objective,
                                 const GopOptions& options,
                                 const std::vector<std::string>& reasons) {
    auto automatic = MeasureGop(objective, options, Progress());
    ASSERT_TRUE(automatic.ok()) << automatic.status();
    EXPECT_EQ(automatic->path, "generic");
    auto forced =
        MeasureGop(objective, WithPath(options, GopPath::kFast), Progress());
    EXPECT_EQ(forced.status().code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& reason : reasons) {
      EXPECT_THAT(forced.status().message(), HasSubstr(reason));
    }
  }
  // ExpectAutoEqualsGeneric with everything and top 4, for both per-sample
  // variants.
  void ExpectEveryVariantEqualsGeneric(Objective& objective) {
    for (const GopVariant variant :
         {GopVariant::kEmpiricalFisher, GopVariant::kGradientCovariance}) {
      SCOPED_TRACE(static_cast<int>(variant));
      ExpectAutoEqualsGeneric(objective, Everything(variant, 4));
    }
  }
  // The fast path's Gram matrices of `samples` (whole and per group) equal
  // the generic path's to 1e-12 of their largest entry, and so does G^T w;
  // the fast path's features.
  LinearGopFeatures ExpectSameGramMatrices(
      Objective& objective, const std::vector<int64_t>& samples) {
    const std::vector<GopGroup> groups = GopGroups(objective);
    auto generic = GopGramMatrices(objective, samples, groups, int64_t{1} << 20,
                                   Progress());
    EXPECT_TRUE(generic.ok()) << generic.status();
    auto features = ComputeLinearGopFeatures(objective, samples, Progress());
    EXPECT_TRUE(features.ok()) << features.status();
    if (!generic.ok() || !features.ok()) return LinearGopFeatures();
    auto fast = LinearGopGramMatrices(*features, groups);
    EXPECT_TRUE(fast.ok()) << fast.status();
    if (!fast.ok()) return LinearGopFeatures();
    for (size_t g = 0; g <= groups.size(); ++g) {
      const torch::Tensor& expected =
          g < groups.size() ? generic->groups[g] : generic->whole;
      const torch::Tensor& got =
          g < groups.size() ? fast->groups[g] : fast->whole;
      EXPECT_LT((got - expected).abs().max().item<double>(),
                1e-12 * expected.abs().max().item<double>())
          << (g < groups.size() ? groups[g].name : "whole");
    }
    const int64_t n = static_cast<int64_t>(samples.size());
    ExpectSameGradientTransposeTimes(*features, generic->gradients,
                                     SeededRandn({n, 3}, 26).to(device()));
    return *std::move(features);
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

// W3 (or `archive`, a model of the same inputs): token ids [N, 3] (a, b,
// '=') as floats.
class GopTransformerTest : public GopTorchScriptFastPathTest {
 protected:
  bool MakeTransformer(const std::string& archive = "gop_transformer.pt") {
    if (!Load(archive)) return false;
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
  ASSERT_EQ(GopGroups(objective).size(), 7);
  const LinearGopFeatures features =
      ExpectSameGramMatrices(objective, {0, 1, 3, 4, 5, 8});
  // Tokens kept: qkv's inputs [N, T, d] (after position, embed).
  ASSERT_EQ(features.layers.size(), 7);
  EXPECT_EQ(features.layers[2].inputs.sizes(), (c10::IntArrayRef{6, 3, 8}));
}

TEST_P(GopTransformerTest, EveryVariantEqualsTheGenericPath) {
  if (!MakeTransformer()) GTEST_SKIP() << "no TorchScript fixture";
  Objective objective = MakeObjective(inputs_, targets_);
  ExpectEveryVariantEqualsGeneric(objective);
}

// The two-layer pre-LayerNorm Transformer: five LayerNorms (eps 1e-5) among
// the Linear layers, every parameter recorded.
TEST_P(GopTransformerTest, LayerNormTransformerRecordsEveryParameter) {
  if (!MakeTransformer("gop_ln_transformer.pt")) {
    GTEST_SKIP() << "no TorchScript fixture";
  }
  const std::vector<RecordedLayer> layers = model_->RecordedLayers();
  std::vector<std::string> layer_norms;
  size_t parameters = 0;
  for (const RecordedLayer& layer : layers) {
    parameters += layer.bias.empty() ? 1 : 2;
    if (layer.kind != Kind::kLayerNorm) continue;
    layer_norms.push_back(layer.weight + "/" + layer.bias);
    EXPECT_DOUBLE_EQ(layer.eps, 1e-5);
  }
  EXPECT_THAT(
      layer_norms,
      ElementsAre("blocks.0.ln_attention.weight/blocks.0.ln_attention.bias",
                  "blocks.0.ln_mlp.weight/blocks.0.ln_mlp.bias",
                  "blocks.1.ln_attention.weight/blocks.1.ln_attention.bias",
                  "blocks.1.ln_mlp.weight/blocks.1.ln_mlp.bias",
                  "ln_final.weight/ln_final.bias"));
  EXPECT_EQ(parameters, model_->ParameterNames().size());
}

TEST_P(GopTransformerTest, LayerNormTransformerEqualsTheGenericPath) {
  if (!MakeTransformer("gop_ln_transformer.pt")) {
    GTEST_SKIP() << "no TorchScript fixture";
  }
  Objective objective = MakeObjective(inputs_, targets_);
  const LinearGopFeatures features =
      ExpectSameGramMatrices(objective, {0, 1, 2, 4, 6, 7, 8});
  // A LayerNorm's per-sample gradients, formed: [N, d_model] each.
  ASSERT_GT(features.layers.size(), 2);
  EXPECT_EQ(features.layers[2].kind, Kind::kLayerNorm);
  EXPECT_EQ(features.layers[2].weight_gradients.sizes(),
            (c10::IntArrayRef{7, 8}));
  EXPECT_EQ(features.layers[2].bias_gradients.sizes(),
            (c10::IntArrayRef{7, 8}));
  ExpectEveryVariantEqualsGeneric(objective);
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

// Two Conv2d layers (stride 2 and padding 1; dilation 2, padding 1, no
// bias) before a Linear head.
TEST_P(GopTorchScriptFastPathTest, ConvNetEqualsTheGenericPath) {
  if (!Load("gop_conv.pt")) GTEST_SKIP() << "no TorchScript fixture";
  const std::vector<RecordedLayer> layers = model_->RecordedLayers();
  EXPECT_THAT(Describe(layers),
              ElementsAre("conv0.weight/conv0.bias:4", "conv1.weight/:4",
                          "head.weight/head.bias:0"));
  ASSERT_EQ(layers.size(), 3);
  EXPECT_THAT(layers[0].stride, ElementsAre(2, 2));
  EXPECT_THAT(layers[0].padding, ElementsAre(1, 1));
  EXPECT_THAT(layers[1].dilation, ElementsAre(2, 2));
  Objective objective = MakeObjective(SeededRandn({kSamples, 2, 6, 6}, 28),
                                      SeededLabels(kSamples, 3, 29));
  const LinearGopFeatures features =
      ExpectSameGramMatrices(objective, {0, 2, 3, 5, 6, 7, 8});
  ASSERT_EQ(features.layers.size(), 3);
  // conv0's per-sample gradients, formed: [N, 3 * 2 * 3 * 3].
  EXPECT_EQ(features.layers[0].weight_gradients.sizes(),
            (c10::IntArrayRef{7, 54}));
  ExpectEveryVariantEqualsGeneric(objective);
}

// The fast path holds a Conv2d layer's per-sample gradients: N x (its
// parameters), beside N x (input + output) for the Linear head; one float
// fewer than that in the cap and auto takes the generic path, fast is refused.
TEST_P(GopTorchScriptFastPathTest, ConvGradientsCountAgainstTheCap) {
  if (!Load("gop_conv.pt")) GTEST_SKIP() << "no TorchScript fixture";
  Objective objective = MakeObjective(SeededRandn({kSamples, 2, 6, 6}, 30),
                                      SeededLabels(kSamples, 3, 31));
  const int64_t per_sample = (3 * 2 * 9 + 3) + 2 * 3 * 4 + (18 + 3);
  EXPECT_TRUE(
      GopFastPathApplies(objective, kSamples, kSamples * per_sample).ok());
  GopOptions options;
  options.top_k = 2;
  options.max_gradient_floats = kSamples * per_sample - 1;
  ExpectGenericUnlessForced(objective, options,
                            {absl::StrCat("N x ", per_sample)});
}

// A block with the BatchNorm layer takes the generic path under auto and is
// refused under fast, naming it; the conv layer and the head alone take the
// fast path (BatchNorm in eval mode treats each sample alone).
TEST_P(GopTorchScriptFastPathTest, ABatchNormLayerTakesTheGenericPath) {
  if (!Load("gop_batchnorm.pt")) GTEST_SKIP() << "no TorchScript fixture";
  EXPECT_THAT(
      Describe(model_->RecordedLayers()),
      ElementsAre("conv.weight/conv.bias:4", "head.weight/head.bias:0"));
  const torch::Tensor inputs = SeededRandn({kSamples, 1, 4, 4}, 32);
  const torch::Tensor labels = SeededLabels(kSamples, 3, 33);
  Objective whole = MakeObjective(inputs, labels);
  const GopOptions options = Everything(GopVariant::kEmpiricalFisher, 3);
  ExpectGenericUnlessForced(whole, options, {"'bn.weight'", "not BatchNorm"});
  ParameterBlock around;
  around.prefixes = {"conv.", "head."};
  Objective without_batch_norm = MakeObjective(inputs, labels, around);
  ExpectAutoEqualsGeneric(without_batch_norm, options);
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
  ExpectGenericUnlessForced(objective, options, {"records no layers"});
}

CURVD_INSTANTIATE_DEVICE_TEST(GopTorchScriptFastPathTest);
CURVD_INSTANTIATE_DEVICE_TEST(GopTransformerTest);

}  // namespace
}  // namespace curvd::core

// ChainObjective against Objective: each chain's minibatch loss and gradient
// are those of an objective over just its samples at its parameters, and the
// full-shard ones those of the objective itself, through the zoo MLP's batched
// pass and through a TorchScript model's chains (on copies, side by side, on
// CUDA; in turn on the CPU).
#include "core/objective/chain_objective.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/api/sources.h"
#include "core/objective/linear_operator.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::LinearModel;
using ::curvd::core::testing::RelativeError;
using ::curvd::core::testing::SeededLabels;
using ::curvd::core::testing::SeededRandn;
using ::testing::HasSubstr;

constexpr int64_t kSamples = 23;
constexpr int64_t kMicroBatch = 5;  // five micro-batches, the last of 3
constexpr int64_t kChains = 3;
constexpr int64_t kBatch = 6;

// The fixture's TorchScript tanh MLP 5-8-3 (fc0, fc1), as the zoo's.
const std::vector<int64_t> kScriptWidths = {5, 8, 3};

// All of the model's parameters, flattened and concatenated, as a copy.
torch::Tensor FlatParameters(Model& model) {
  std::vector<torch::Tensor> flat;
  for (const torch::Tensor& p : model.Parameters()) {
    flat.push_back(p.detach().reshape({-1}).clone());
  }
  return torch::cat(flat);
}

// The block's parameters of `objective` as a flat vector.
torch::Tensor BlockPoint(const Objective& objective) {
  std::vector<torch::Tensor> flat;
  for (const torch::Tensor& p : objective.block_parameters()) {
    flat.push_back(p.detach().reshape({-1}));
  }
  return torch::cat(flat);
}

// Objective::Loss and ::Gradient of `model` on the shard (x, y) at the block
// point `w`; the model keeps w.
std::pair<double, torch::Tensor> ObjectiveAt(Model& model,
                                             const torch::Tensor& x,
                                             const torch::Tensor& y,
                                             LossFunction loss,
                                             int64_t micro_batch_size,
                                             const ParameterBlock& block,
                                             const torch::Tensor& w) {
  auto objective =
      Objective::Create(&model, x, y, loss, micro_batch_size, block);
  EXPECT_TRUE(objective.ok()) << objective.status();
  {
    torch::NoGradGuard no_grad;
    const std::vector<torch::Tensor> parts =
        w.split_with_sizes(objective->block_numels());
    for (size_t j = 0; j < parts.size(); ++j) {
      objective->block_parameters()[j].copy_(
          parts[j].view(objective->block_parameters()[j].sizes()));
    }
  }
  return {objective->Loss().value(), objective->Gradient().value()};
}

class ChainObjectiveTest : public DeviceTest {
 protected:
  std::unique_ptr<Model> Zoo(const std::vector<int64_t>& widths,
                             const std::string& activation) {
    ModelSource source;
    source.kind = ModelSource::Kind::kZoo;
    source.zoo.layer_widths = widths;
    source.zoo.activation = activation;
    torch::manual_seed(7);
    return Loaded(source);
  }
  // Null (and the test skipped by the caller) without the Python fixture.
  std::unique_ptr<Model> Script() {
    ModelSource source;
    source.kind = ModelSource::Kind::kTorchScript;
    source.archive_path = std::string(CURVD_CORE_FIXTURE_DIR) + "/zoo_mlp.pt";
    if (!std::ifstream(source.archive_path)) return nullptr;
    return Loaded(source);
  }
  std::unique_ptr<Model> Loaded(const ModelSource& source) {
    auto model = LoadModel(source, torch::kFloat64);
    EXPECT_TRUE(model.ok()) << model.status();
    (*model)->To(device(), torch::kFloat64);
    return *std::move(model);
  }

  // Two instances each of the zoo's tanh MLP of kScriptWidths and (with the
  // Python fixture) the TorchScript one: a model and its reference.
  std::vector<std::pair<std::unique_ptr<Model>, std::unique_ptr<Model>>>
  ZooAndScriptPairs() {
    std::vector<std::pair<std::unique_ptr<Model>, std::unique_ptr<Model>>>
        pairs;
    pairs.emplace_back(Zoo(kScriptWidths, "tanh"), Zoo(kScriptWidths, "tanh"));
    if (std::unique_ptr<Model> script = Script(); script != nullptr) {
      pairs.emplace_back(std::move(script), Script());
    }
    return pairs;
  }

  // A shard for a model of `widths`: class labels for cross-entropy, else
  // real targets.
  std::pair<torch::Tensor, torch::Tensor> Shard(
      const std::vector<int64_t>& widths, LossFunction loss) {
    const torch::Tensor x = SeededRandn({kSamples, widths.front()}, 21);
    const torch::Tensor y =
        loss == LossFunction::kCrossEntropy
            ? SeededLabels(kSamples, widths.back(), 22)
            : SeededRandn({kSamples, widths.back()}, 23);
    return {x.to(device()), y.to(device())};
  }

  // Chains about the objective's point: w* plus a perturbation of each row.
  torch::Tensor ChainsAbout(const Objective& objective, uint64_t seed) {
    return BlockPoint(objective) +
           0.3 * SeededRandn({kChains, objective.num_parameters()}, seed)
                     .to(device());
  }

  // Minibatch and FullShard of `model` against objectives built on
  // `reference`, another instance of the same model; the model's parameters
  // are unchanged bit for bit. Returns ChainObjective::batched().
  bool ExpectMatchesObjectives(Model& model, Model& reference,
                               const std::vector<int64_t>& widths,
                               LossFunction loss,
                               const ParameterBlock& block = {}) {
    const auto [x, y] = Shard(widths, loss);
    auto objective =
        Objective::Create(&model, x, y, loss, kMicroBatch, block);
    EXPECT_TRUE(objective.ok()) << objective.status();
    ChainObjective chain_objective(*objective);
    const torch::Tensor chains = ChainsAbout(*objective, 24);
    at::Generator generator = SeededGenerator(25);
    const torch::Tensor indices =
        torch::randint(0, kSamples, {kChains, kBatch}, generator,
                       torch::kInt64)
            .to(device());
    const torch::Tensor before = FlatParameters(model);
    const ChainEvaluation minibatch =
        chain_objective.Minibatch(chains, indices).value();
    const ChainEvaluation full = chain_objective.FullShard(chains, true).value();
    const ChainEvaluation losses_only =
        chain_objective.FullShard(chains, false).value();
    EXPECT_TRUE(torch::equal(FlatParameters(model), before));

    const int64_t p = objective->num_parameters();
    EXPECT_EQ(minibatch.losses.sizes(), (std::vector<int64_t>{kChains}));
    EXPECT_EQ(minibatch.losses.scalar_type(), torch::kFloat64);
    EXPECT_EQ(minibatch.gradients.sizes(), (std::vector<int64_t>{kChains, p}));
    EXPECT_EQ(full.gradients.sizes(), (std::vector<int64_t>{kChains, p}));
    EXPECT_FALSE(losses_only.gradients.defined());
    EXPECT_TRUE(torch::equal(losses_only.losses, full.losses));
    for (int64_t c = 0; c < kChains; ++c) {
      SCOPED_TRACE(::testing::Message() << "chain " << c);
      const torch::Tensor samples = indices[c];
      const auto [batch_loss, batch_gradient] = ObjectiveAt(
          reference, x.index_select(0, samples), y.index_select(0, samples),
          loss, 0, block, chains[c]);
      EXPECT_NEAR(minibatch.losses[c].item<double>(), batch_loss,
                  1e-12 * batch_loss);
      EXPECT_LT(RelativeError(minibatch.gradients[c], batch_gradient), 1e-12);
      const auto [shard_loss, shard_gradient] =
          ObjectiveAt(reference, x, y, loss, kMicroBatch, block, chains[c]);
      EXPECT_NEAR(full.losses[c].item<double>(), shard_loss,
                  1e-12 * shard_loss);
      EXPECT_LT(RelativeError(full.gradients[c], shard_gradient), 1e-12);
      // The chains are not all at one point.
      EXPECT_NE(full.losses[c].item<double>(),
                full.losses[(c + 1) % kChains].item<double>());
    }
    return chain_objective.batched();
  }
};

TEST_P(ChainObjectiveTest, ZooMlpMatchesObjectivesInOnePassForEachActivation) {
  const std::vector<int64_t> widths = {4, 6, 5, 3};
  for (const char* activation : {"tanh", "relu", "gelu"}) {
    for (const LossFunction loss :
         {LossFunction::kCrossEntropy, LossFunction::kMse}) {
      SCOPED_TRACE(::testing::Message()
                   << activation << " cross-entropy "
                   << (loss == LossFunction::kCrossEntropy));
      const std::unique_ptr<Model> model = Zoo(widths, activation);
      const std::unique_ptr<Model> reference = Zoo(widths, activation);
      EXPECT_TRUE(model->SupportsChains());
      EXPECT_TRUE(ExpectMatchesObjectives(*model, *reference, widths, loss));
    }
  }
}

// On CUDA a TorchScript model's chains run on copies of it, side by side, so
// Minibatch never writes the model's own parameters; on the CPU they run in
// turn through them (written, then restored).
TEST_P(ChainObjectiveTest, TorchScriptChainsRunOnCopiesOnlyOnCuda) {
  const std::unique_ptr<Model> model = Script();
  if (model == nullptr) GTEST_SKIP() << "no Python TorchScript fixture";
  const auto [x, y] = Shard(kScriptWidths, LossFunction::kMse);
  auto objective = Objective::Create(model.get(), x, y, LossFunction::kMse,
                                     kMicroBatch, {});
  ASSERT_TRUE(objective.ok()) << objective.status();
  ChainObjective chain_objective(*objective);
  const torch::Tensor indices =
      torch::zeros({kChains, kBatch}, torch::kInt64).to(device());
  const torch::Tensor first = model->Parameters().front();
  const auto version = first._version();
  ASSERT_TRUE(chain_objective.Minibatch(ChainsAbout(*objective, 26), indices)
                  .ok());
  if (on_cuda()) {
    EXPECT_EQ(first._version(), version);
  } else {
    EXPECT_GT(first._version(), version);
  }
}

TEST_P(ChainObjectiveTest, TorchScriptChainsMatchObjectives) {
  const std::unique_ptr<Model> model = Script();
  if (model == nullptr) GTEST_SKIP() << "no Python TorchScript fixture";
  const std::unique_ptr<Model> reference = Script();
  EXPECT_FALSE(model->SupportsChains());
  for (const LossFunction loss :
       {LossFunction::kCrossEntropy, LossFunction::kMse}) {
    SCOPED_TRACE(loss == LossFunction::kCrossEntropy);
    EXPECT_FALSE(
        ExpectMatchesObjectives(*model, *reference, kScriptWidths, loss));
  }
}

// Parameters outside the block keep the model's values and get no gradient.
TEST_P(ChainObjectiveTest, BlockRestrictionDifferentiatesOnlyTheBlock) {
  const ParameterBlock block{{}, {"fc1."}};
  for (auto& [model, reference] : ZooAndScriptPairs()) {
    SCOPED_TRACE(model->SupportsChains() ? "zoo" : "TorchScript");
    const auto [x, y] = Shard(kScriptWidths, LossFunction::kCrossEntropy);
    auto objective = Objective::Create(model.get(), x, y,
                                       LossFunction::kCrossEntropy, 0, block);
    ASSERT_TRUE(objective.ok()) << objective.status();
    EXPECT_EQ(objective->num_parameters(), 8 * 3 + 3);
    ExpectMatchesObjectives(*model, *reference, kScriptWidths,
                            LossFunction::kCrossEntropy, block);
  }
}

// Changing chain 1 changes nothing of chain 0's numbers.
TEST_P(ChainObjectiveTest, ChainsAreIndependent) {
  const std::unique_ptr<Model> script = Script();
  std::vector<std::unique_ptr<Model>> models;
  models.push_back(Zoo(kScriptWidths, "gelu"));
  if (script != nullptr) models.push_back(Script());
  for (const std::unique_ptr<Model>& model : models) {
    SCOPED_TRACE(model->SupportsChains() ? "zoo" : "TorchScript");
    const auto [x, y] = Shard(kScriptWidths, LossFunction::kMse);
    auto objective = Objective::Create(model.get(), x, y, LossFunction::kMse,
                                       kMicroBatch);
    ASSERT_TRUE(objective.ok()) << objective.status();
    ChainObjective chain_objective(*objective);
    torch::Tensor chains = ChainsAbout(*objective, 31);
    const torch::Tensor indices =
        torch::arange(kChains * kBatch, torch::dtype(torch::kInt64))
            .view({kChains, kBatch})
            .remainder(kSamples)
            .to(device());
    const ChainEvaluation minibatch =
        chain_objective.Minibatch(chains, indices).value();
    const ChainEvaluation full = chain_objective.FullShard(chains, true).value();
    chains[1].mul_(2);
    const ChainEvaluation minibatch_moved =
        chain_objective.Minibatch(chains, indices).value();
    const ChainEvaluation full_moved =
        chain_objective.FullShard(chains, true).value();
    for (const auto& [before, after] :
         {std::pair(minibatch, minibatch_moved), std::pair(full, full_moved)}) {
      EXPECT_TRUE(torch::equal(after.losses[0], before.losses[0]));
      EXPECT_TRUE(torch::equal(after.gradients[0], before.gradients[0]));
      EXPECT_FALSE(torch::equal(after.losses[1], before.losses[1]));
      EXPECT_FALSE(torch::equal(after.gradients[1], before.gradients[1]));
    }
  }
}

// Each call evaluates its own chains and samples: on CUDA by replaying the
// graph the first call recorded.
TEST_P(ChainObjectiveTest, RepeatedMinibatchesMatchObjectives) {
  for (auto& [model, reference] : ZooAndScriptPairs()) {
    SCOPED_TRACE(model->SupportsChains() ? "zoo" : "TorchScript");
    const auto [x, y] = Shard(kScriptWidths, LossFunction::kCrossEntropy);
    auto objective = Objective::Create(model.get(), x, y,
                                       LossFunction::kCrossEntropy, kMicroBatch);
    ASSERT_TRUE(objective.ok()) << objective.status();
    ChainObjective chain_objective(*objective);
    const torch::Tensor before = FlatParameters(*model);
    at::Generator generator = SeededGenerator(51);
    for (uint64_t call = 0; call < 3; ++call) {
      SCOPED_TRACE(::testing::Message() << "call " << call);
      const torch::Tensor chains = ChainsAbout(*objective, 52 + call);
      const torch::Tensor indices =
          torch::randint(0, kSamples, {kChains, kBatch}, generator,
                         torch::kInt64)
              .to(device());
      const ChainEvaluation minibatch =
          chain_objective.Minibatch(chains, indices).value();
      EXPECT_EQ(chain_objective.graphed(), on_cuda());
      EXPECT_EQ(chain_objective.graph_failure(), "");
      for (int64_t c = 0; c < kChains; ++c) {
        const auto [loss, gradient] = ObjectiveAt(
            *reference, x.index_select(0, indices[c]),
            y.index_select(0, indices[c]), LossFunction::kCrossEntropy, 0, {},
            chains[c]);
        EXPECT_NEAR(minibatch.losses[c].item<double>(), loss, 1e-12 * loss);
        EXPECT_LT(RelativeError(minibatch.gradients[c], gradient), 1e-12);
      }
    }
    EXPECT_TRUE(torch::equal(FlatParameters(*model), before));
  }
}

// A linear model that reads a number back to the host in its forward pass.
class SynchronisingLinearModel : public LinearModel {
 public:
  using LinearModel::LinearModel;
  torch::Tensor Forward(const torch::Tensor& x) override {
    (void)x.abs().max().item<double>();
    return LinearModel::Forward(x);
  }
};

// Such a model cannot be recorded: on CUDA the chains run eagerly, with the
// reason kept, and give the same numbers.
TEST_P(ChainObjectiveTest, AModelThatSynchronisesRunsEagerly) {
  SynchronisingLinearModel model(4, 2, /*seed=*/61);
  LinearModel reference(4, 2, /*seed=*/61);
  model.To(device(), torch::kFloat64);
  reference.To(device(), torch::kFloat64);
  const auto [x, y] = Shard({4, 2}, LossFunction::kMse);
  auto objective =
      Objective::Create(&model, x, y, LossFunction::kMse, kMicroBatch);
  ASSERT_TRUE(objective.ok()) << objective.status();
  ChainObjective chain_objective(*objective);
  const torch::Tensor chains = ChainsAbout(*objective, 62);
  const torch::Tensor indices =
      torch::arange(kChains * kBatch, torch::dtype(torch::kInt64))
          .view({kChains, kBatch})
          .to(device());
  for (int call = 0; call < 2; ++call) {
    const ChainEvaluation minibatch =
        chain_objective.Minibatch(chains, indices).value();
    EXPECT_FALSE(chain_objective.graphed());
    if (on_cuda()) {
      EXPECT_THAT(chain_objective.graph_failure(), HasSubstr("recording"));
    } else {
      EXPECT_EQ(chain_objective.graph_failure(), "");
    }
    for (int64_t c = 0; c < kChains; ++c) {
      const auto [loss, gradient] = ObjectiveAt(
          reference, x.index_select(0, indices[c]),
          y.index_select(0, indices[c]), LossFunction::kMse, 0, {}, chains[c]);
      EXPECT_NEAR(minibatch.losses[c].item<double>(), loss, 1e-12 * loss);
      EXPECT_LT(RelativeError(minibatch.gradients[c], gradient), 1e-12);
    }
  }
}

// A linear model whose forward pass throws once `forwards_left` more have
// run (never while it is negative).
class ThrowingLinearModel : public LinearModel {
 public:
  using LinearModel::LinearModel;
  torch::Tensor Forward(const torch::Tensor& x) override {
    TORCH_CHECK(forwards_left != 0, "the model throws");
    if (forwards_left > 0) --forwards_left;
    return LinearModel::Forward(x);
  }
  int forwards_left = -1;
};

TEST_P(ChainObjectiveTest, ThrowingModelLeavesItsParametersAsTheyWere) {
  ThrowingLinearModel model(4, 2, /*seed=*/41);
  model.To(device(), torch::kFloat64);
  const auto [x, y] = Shard({4, 2}, LossFunction::kMse);
  auto objective =
      Objective::Create(&model, x, y, LossFunction::kMse, kMicroBatch);
  ASSERT_TRUE(objective.ok()) << objective.status();
  ChainObjective chain_objective(*objective);
  EXPECT_FALSE(chain_objective.batched());
  const torch::Tensor chains = ChainsAbout(*objective, 42);
  const torch::Tensor before = FlatParameters(model);
  // Chain 0 runs; chain 1 throws with its parameters in the model.
  model.forwards_left = 1;
  EXPECT_THROW(
      (void)chain_objective.Minibatch(
          chains, torch::zeros({kChains, 2}, options(torch::kInt64))),
      c10::Error);
  EXPECT_TRUE(torch::equal(FlatParameters(model), before));
  // Chain 1 throws at its third micro-batch.
  model.forwards_left = (kSamples + kMicroBatch - 1) / kMicroBatch + 2;
  EXPECT_THROW((void)chain_objective.FullShard(chains, true), c10::Error);
  EXPECT_TRUE(torch::equal(FlatParameters(model), before));
}

TEST_P(ChainObjectiveTest, BadShapesAndIndicesAreRefused) {
  const std::unique_ptr<Model> model = Zoo(kScriptWidths, "tanh");
  const auto [x, y] = Shard(kScriptWidths, LossFunction::kCrossEntropy);
  auto objective = Objective::Create(model.get(), x, y,
                                     LossFunction::kCrossEntropy, kMicroBatch);
  ASSERT_TRUE(objective.ok()) << objective.status();
  ChainObjective chain_objective(*objective);
  const int64_t p = objective->num_parameters();
  const torch::Tensor chains = ChainsAbout(*objective, 51);
  const torch::Tensor indices = torch::zeros({kChains, 4}, options(torch::kInt64));
  torch::Tensor past_the_end = indices.cpu().clone();
  past_the_end.index_put_({1, 2}, kSamples);
  const torch::Tensor before = FlatParameters(*model);
  const struct {
    const char* what;
    torch::Tensor chains;
  } bad_chains[] = {
      {"one more column", torch::zeros({kChains, p + 1}, options())},
      {"a vector", torch::zeros({p}, options())},
      {"no chain", torch::zeros({0, p}, options())},
      {"int64", torch::zeros({kChains, p}, options(torch::kInt64))},
  };
  for (const auto& bad : bad_chains) {
    SCOPED_TRACE(bad.what);
    for (const absl::Status& status :
         {chain_objective.Minibatch(bad.chains, indices).status(),
          chain_objective.FullShard(bad.chains, true).status()}) {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(status.message(), HasSubstr("chains have shape"));
    }
  }
  const struct {
    const char* what;
    torch::Tensor indices;
    const char* message;
  } bad_indices[] = {
      {"float", torch::zeros({kChains, 4}, options()), "want int64"},
      {"a chain too few", torch::zeros({kChains - 1, 4}, options(torch::kInt64)),
       "want int64"},
      {"no sample", torch::zeros({kChains, 0}, options(torch::kInt64)),
       "want int64"},
      {"a vector", torch::zeros({kChains}, options(torch::kInt64)),
       "want int64"},
      // Out-of-range indices are checked when given on the CPU (those on a
      // device are the caller's to keep in range: chain_objective.h).
      {"-1", torch::full({kChains, 4}, -1, torch::kInt64), "span [-1, -1]"},
      {"N", past_the_end, "outside the shard's samples"},
  };
  for (const auto& bad : bad_indices) {
    SCOPED_TRACE(bad.what);
    const absl::Status status =
        chain_objective.Minibatch(chains, bad.indices).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr(bad.message));
  }
  EXPECT_TRUE(torch::equal(FlatParameters(*model), before));
  EXPECT_TRUE(chain_objective.Minibatch(chains, indices).ok());
}

CURVD_INSTANTIATE_DEVICE_TEST(ChainObjectiveTest);

}  // namespace
}  // namespace curvd::core

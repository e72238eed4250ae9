// Objectives restricted to a block of the parameters: their Hessian, GGN and
// gradient are the block's rows and columns of the whole model's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/objective/objective.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::LayeredTanhMlp;
using ::curvd::core::testing::MatrixColumns;
using ::curvd::core::testing::RelativeError;
using ::curvd::core::testing::SeededLabels;
using ::curvd::core::testing::SeededRandn;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

LinearOperator HvpOf(Objective& objective) {
  return [&objective](const torch::Tensor& v) { return objective.Hvp(v); };
}

LinearOperator GgnvpOf(Objective& objective) {
  return [&objective](const torch::Tensor& v) { return objective.Ggnvp(v); };
}

// 6-10-8-3 network: layers.0 (60 + 10), layers.1 (80 + 8), layers.2 (24 + 3),
// 185 parameters.
const std::vector<int64_t> kWidths = {6, 10, 8, 3};
const std::vector<int64_t> kSizes = {60, 10, 80, 8, 24, 3};

// The flat indices of the parameters numbered `which` (in model order).
torch::Tensor FlatIndices(const std::vector<size_t>& which) {
  std::vector<torch::Tensor> ranges;
  for (size_t i : which) {
    int64_t start = 0;
    for (size_t j = 0; j < i; ++j) start += kSizes[j];
    ranges.push_back(torch::arange(start, start + kSizes[i], torch::kInt64));
  }
  return torch::cat(ranges);
}

struct Case {
  const char* label;
  ParameterBlock block;
  std::vector<size_t> parameters;  // which the block selects
  std::vector<std::string> names;
};

class ParameterBlockTest : public DeviceTest {
 protected:
  void SetUp() override {
    DeviceTest::SetUp();
    if (IsSkipped()) return;
    model_.To(device(), torch::kFloat64);
    x_ = SeededRandn({29, 6}, 2).to(device());
    labels_ = SeededLabels(29, 3, 3).to(device());
  }
  absl::StatusOr<Objective> Create(const ParameterBlock& block) {
    return Objective::Create(&model_, x_, labels_, LossFunction::kCrossEntropy,
                             /*micro_batch_size=*/10, block);
  }

  LayeredTanhMlp model_{kWidths, /*seed=*/1};
  torch::Tensor x_;
  torch::Tensor labels_;
};

const std::vector<Case>& Cases() {
  static const std::vector<Case> kCases = {
      {"exact name", {{"layers.1.weight"}, {}}, {2}, {"layers.1.weight"}},
      {"prefix",
       {{}, {"layers.0."}},
       {0, 1},
       {"layers.0.weight", "layers.0.bias"}},
      // Names out of model order, a name also matched by a prefix, and a block
      // that is not contiguous in the flat vector.
      {"both",
       {{"layers.2.bias", "layers.0.bias"}, {"layers.0"}},
       {0, 1, 5},
       {"layers.0.weight", "layers.0.bias", "layers.2.bias"}},
  };
  return kCases;
}

// H_BB and G_BB, assembled from products with the block objective, are the
// block's rows and columns of the whole model's H and G; the block's gradient
// is the whole gradient's entries.
TEST_P(ParameterBlockTest, BlockIsTheSubMatrixOfTheWholeModel) {
  auto all = Create({});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->num_parameters(), 185);
  EXPECT_THAT(all->block_parameter_names(), IsEmpty());
  const torch::Tensor hessian = MatrixColumns(HvpOf(*all), 185, options());
  const torch::Tensor ggn = MatrixColumns(GgnvpOf(*all), 185, options());
  const torch::Tensor gradient = all->Gradient().value().cpu();

  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.label);
    auto block = Create(c.block);
    ASSERT_TRUE(block.ok()) << block.status();
    EXPECT_EQ(block->block_parameter_names(), c.names);
    const torch::Tensor index = FlatIndices(c.parameters);
    const int64_t size = index.size(0);
    ASSERT_EQ(block->num_parameters(), size);
    const torch::Tensor hessian_bb =
        hessian.index_select(0, index).index_select(1, index);
    const torch::Tensor ggn_bb =
        ggn.index_select(0, index).index_select(1, index);
    EXPECT_LT(RelativeError(MatrixColumns(HvpOf(*block), size, options()),
                            hessian_bb),
              1e-12);
    EXPECT_LT(
        RelativeError(MatrixColumns(GgnvpOf(*block), size, options()), ggn_bb),
        1e-12);
    EXPECT_LT(RelativeError(block->Gradient().value(),
                            gradient.index_select(0, index)),
              1e-12);
    EXPECT_EQ(block->Hvp(torch::ones({185}, options())).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST_P(ParameterBlockTest, BlockThatSelectsNothingListsTheNames) {
  const absl::Status no_match = Create({{}, {"decoder."}}).status();
  EXPECT_EQ(no_match.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_match.message(), HasSubstr("decoder."));
  EXPECT_THAT(no_match.message(), HasSubstr("layers.0.weight"));
  EXPECT_THAT(no_match.message(), HasSubstr("layers.2.bias"));

  // An unknown exact name is an error even when the rest of the block selects
  // parameters: it is most likely a typo.
  const absl::Status unknown =
      Create({{"layers.1.weight", "layers.1.wieght"}, {}}).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.message(), HasSubstr("\"layers.1.wieght\""));
  EXPECT_THAT(unknown.message(), HasSubstr("layers.1.weight"));

  // A prefix that matches nothing beside one that does is fine.
  auto partial = Create({{}, {"layers.2.", "decoder."}});
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_THAT(partial->block_parameter_names(),
              ElementsAre("layers.2.weight", "layers.2.bias"));
}

// Parameters outside the block keep their values and are not made to require
// gradients by the block's objective.
TEST_P(ParameterBlockTest, OnlyTheBlockIsDifferentiated) {
  LayeredTanhMlp fresh(kWidths, /*seed=*/1);
  fresh.To(device(), torch::kFloat64);
  auto block =
      Objective::Create(&fresh, x_, labels_, LossFunction::kCrossEntropy, 0,
                        ParameterBlock{{"layers.1.bias"}, {}});
  ASSERT_TRUE(block.ok()) << block.status();
  const std::vector<torch::Tensor> parameters = fresh.Parameters();
  for (size_t i = 0; i < parameters.size(); ++i) {
    EXPECT_EQ(parameters[i].requires_grad(), i == 3) << i;
  }
  EXPECT_EQ(block->Gradient().value().size(0), 8);
}

CURVD_INSTANTIATE_DEVICE_TEST(ParameterBlockTest);

TEST(ParameterBlockSelectsTest, ExactNamesPrefixesAndEverythingWhenEmpty) {
  EXPECT_TRUE(ParameterBlock{}.Selects("fc0.weight"));
  const ParameterBlock block{{"fc0.bias"}, {"fc1."}};
  EXPECT_TRUE(block.Selects("fc0.bias"));
  EXPECT_FALSE(block.Selects("fc0.bias2"));  // a name is matched whole
  EXPECT_FALSE(block.Selects("fc0.weight"));
  EXPECT_TRUE(block.Selects("fc1.weight"));
  EXPECT_FALSE(block.Selects("fc10.weight"));  // "fc1." is not a prefix of it
}

}  // namespace
}  // namespace curvd::core

#include "client/zoo_weights.h"

#include <cmath>
#include <cstring>

#include "core/api/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseZooSpecTest, ReadsWidthsAndActivation) {
  auto model = ParseZooSpec("mlp:784,64,10:relu");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->architecture(), "mlp");
  EXPECT_THAT(model->layer_widths(), ElementsAre(784, 64, 10));
  EXPECT_EQ(model->activation(), "relu");
  auto defaulted = ParseZooSpec("mlp:4,2");
  ASSERT_TRUE(defaulted.ok());
  EXPECT_EQ(defaulted->activation(), "tanh");
}

TEST(ParseZooSpecTest, RejectsBadSpecs) {
  EXPECT_THAT(ParseZooSpec("cnn:1,2").status().message(), HasSubstr("cnn"));
  EXPECT_THAT(ParseZooSpec("mlp:4").status().message(),
              HasSubstr("at least two widths"));
  EXPECT_THAT(ParseZooSpec("mlp:4,0").status().message(), HasSubstr("'0'"));
  EXPECT_THAT(ParseZooSpec("mlp:4,x").status().message(), HasSubstr("'x'"));
  EXPECT_THAT(ParseZooSpec("mlp:4,2:sigmoid").status().message(),
              HasSubstr("sigmoid"));
  EXPECT_FALSE(ParseZooSpec("mlp").ok());
}

TEST(InitialZooWeightsTest, NamesShapesAndTorchLinearBounds) {
  auto model = ParseZooSpec("mlp:16,8,3");
  ASSERT_TRUE(model.ok());
  auto bytes = InitialZooWeights(*model, 1);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto tensors = core::ParseSafetensors(*bytes);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  ASSERT_EQ(tensors->size(), 4u);  // sorted by name
  EXPECT_EQ((*tensors)[0].name, "fc0.bias");
  EXPECT_THAT((*tensors)[0].shape, ElementsAre(8));
  EXPECT_EQ((*tensors)[1].name, "fc0.weight");
  EXPECT_THAT((*tensors)[1].shape, ElementsAre(8, 16));
  EXPECT_EQ((*tensors)[3].name, "fc1.weight");
  EXPECT_THAT((*tensors)[3].shape, ElementsAre(3, 8));
  for (const auto& tensor : *tensors) {
    EXPECT_EQ(tensor.dtype, "F32");
    const float bound =
        1.0f / std::sqrt(tensor.name.rfind("fc0", 0) == 0 ? 16.f : 8.f);
    std::vector<float> values(tensor.data.size() / sizeof(float));
    std::memcpy(values.data(), tensor.data.data(), tensor.data.size());
    for (float v : values) {
      EXPECT_LE(std::abs(v), bound) << tensor.name;
    }
  }
}

TEST(InitialZooWeightsTest, DeterministicPerSeed) {
  auto model = ParseZooSpec("mlp:5,3");
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(*InitialZooWeights(*model, 4), *InitialZooWeights(*model, 4));
  EXPECT_NE(*InitialZooWeights(*model, 4), *InitialZooWeights(*model, 5));
}

}  // namespace
}  // namespace curvd::client

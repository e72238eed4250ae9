// Shards of integer token ids through the engine: an nn.Embedding model saved
// by Python's torch.jit.save, measured on int64 inputs that stay int64 in
// every precision, against the exact Hessian Python computed in float64.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/api/engine.h"
#include "core/api/safetensors.h"
#include "core/data/model.h"
#include "tests/core/engine_sources.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::EngineDeviceTest;
using ::curvd::core::testing::Of;
using ::testing::HasSubstr;

// What the fixture's float64 reference says (token_reference.safetensors).
struct TokenReference {
  double loss = 0;
  std::vector<double> eigenvalues;  // ascending
};

class TokenInputsTest : public EngineDeviceTest {
 protected:
  void SetUp() override {
    EngineDeviceTest::SetUp();
    if (IsSkipped()) return;
    if (!std::filesystem::exists(dir_ + "/token_mlp.pt")) {
      GTEST_SKIP() << "no Python TorchScript fixture in " << dir_;
    }
    auto file = ReadSafetensorsFile(dir_ + "/token_reference.safetensors");
    ASSERT_TRUE(file.ok()) << file.status();
    for (const SafetensorsTensor& t : *file) {
      const torch::Tensor values = TensorFromSafetensors(t).value();
      const double* data = values.data_ptr<double>();
      if (t.name == "loss") reference_.loss = data[0];
      if (t.name == "eigenvalues")
        reference_.eigenvalues.assign(data, data + values.numel());
    }
    ASSERT_EQ(reference_.eigenvalues.size(), 68u);
  }

  ModelSource Archive() const {
    ModelSource source;
    source.kind = ModelSource::Kind::kTorchScript;
    source.archive_path = dir_ + "/token_mlp.pt";
    source.cache_key = "token_mlp.pt";
    return source;
  }
  ShardSpec TokenShard() const {
    ShardSpec spec;
    spec.path = dir_ + "/token_shard.safetensors";
    spec.cache_key = spec.path;
    return spec;
  }
  static MeasurementRequest ExactHessian(Precision precision) {
    MeasurementRequest request;
    request.objective.loss = LossFunction::kCrossEntropy;
    request.objective.precision = precision;
    request.Add<ExactHessianMethod>();
    return request;
  }

  // max |measured - reference| over the spectrum, relative to max |λ|.
  double SpectrumError(const std::vector<double>& measured) const {
    EXPECT_EQ(measured.size(), reference_.eigenvalues.size());
    double error = 0, scale = 0;
    for (size_t i = 0;
         i < std::min(measured.size(), reference_.eigenvalues.size()); ++i) {
      error =
          std::max(error, std::abs(measured[i] - reference_.eigenvalues[i]));
      scale = std::max(scale, std::abs(reference_.eigenvalues[i]));
    }
    return error / scale;
  }

  const std::string dir_ = CURVD_CORE_FIXTURE_DIR;
  TokenReference reference_;
};

// The HVPs behind the exact Hessian go through the embedding's backward on
// int64 ids: float64 matches Python's double backpropagation to rounding, and
// float32 (ids not cast to float32 on the way) to float32 accuracy.
TEST_P(TokenInputsTest, ExactHessianOfEmbeddingModelMatchesFloat64Reference) {
  const auto in_float64 = engine_->Measure(
      Archive(), TokenShard(), ExactHessian(Precision::kFloat64), Progress());
  ASSERT_TRUE(in_float64.ok()) << in_float64.status();
  EXPECT_NEAR(in_float64->loss, reference_.loss, 1e-12);
  EXPECT_EQ(in_float64->num_samples, 25);
  EXPECT_EQ(in_float64->num_parameters, 68);
  EXPECT_LT(SpectrumError(Of<ExactHessianMethod>(in_float64).eigenvalues),
            1e-12);

  const auto in_float32 = engine_->Measure(
      Archive(), TokenShard(), ExactHessian(Precision::kFloat32), Progress());
  ASSERT_TRUE(in_float32.ok()) << in_float32.status();
  EXPECT_NEAR(in_float32->loss, reference_.loss, 1e-5);
  // Measured on the CPU: 3e-8.
  EXPECT_LT(SpectrumError(Of<ExactHessianMethod>(in_float32).eigenvalues),
            1e-5);
}

// A model that takes features, not ids, is told so with the shapes and dtype.
TEST_P(TokenInputsTest, ModelThatCannotTakeTokenIdsIsInvalidArgument) {
  const auto result = engine_->Measure(
      testing::ZooMlp({2, 4, 5}, "zoo:mlp-2-4-5-tanh"), TokenShard(),
      ExactHessian(Precision::kFloat64), Progress());
  ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
      << result.status();
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("shard inputs of shape [25, 2] (long int) do not fit "
                        "the model"));
}

CURVD_INSTANTIATE_DEVICE_TEST(TokenInputsTest);

}  // namespace
}  // namespace curvd::core

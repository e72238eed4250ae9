// The model and shard sources the engine tests measure: zoo MLPs (weights from
// torch's global generator, which a test seeds so that the engine and a
// reference build the same model) and the built-in Gaussian regression shard.
#ifndef CURVD_TESTS_CORE_ENGINE_SOURCES_H_
#define CURVD_TESTS_CORE_ENGINE_SOURCES_H_

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/api/engine.h"
#include "core/api/sources.h"
#include "tests/core/toy_models.h"

namespace curvd::core::testing {

constexpr int64_t kRegressionSamples = 64;

// A tanh zoo MLP with these widths (input first) and no state dict.
inline ModelSource ZooMlp(std::vector<int64_t> widths, std::string cache_key) {
  ModelSource source;
  source.kind = ModelSource::Kind::kZoo;
  source.zoo.layer_widths = std::move(widths);
  source.zoo.activation = "tanh";
  source.cache_key = std::move(cache_key);
  return source;
}

// kRegressionSamples samples of d inputs and 2 outputs, seed 3.
inline ShardSpec GaussianRegression(int64_t d = 4) {
  ShardSpec spec;
  spec.kind = ShardSpec::Kind::kBuiltin;
  spec.generator = "gaussian_regression";
  spec.params = {{"n", std::to_string(kRegressionSamples)},
                 {"d", std::to_string(d)},
                 {"outputs", "2"},
                 {"seed", "3"}};
  spec.cache_key =
      absl::StrCat("builtin://gaussian_regression?n=", kRegressionSamples,
                   "&d=", d, "&outputs=2&seed=3");
  return spec;
}

// The result of kind M in `result`; a test failure (and an empty result)
// when that kind did not run.
template <typename M>
const decltype(M::result)& Of(const absl::StatusOr<MeasurementResult>& result) {
  static const decltype(M::result) kNone;
  const M* method = result.ok() ? result->Find<M>() : nullptr;
  if (method == nullptr) {
    ADD_FAILURE() << "no " << M::kName << " result";
    return kNone;
  }
  return method->result;
}

// A test on one engine of the parameterised device (DeviceTest).
class EngineDeviceTest : public DeviceTest {
 protected:
  void SetUp() override {
    DeviceTest::SetUp();
    if (IsSkipped()) return;
    auto engine = Engine::Create(on_cuda() ? "cuda:0" : "cpu");
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
  }

  // Measures `source` on GaussianRegression(), the model's weights drawn from
  // torch seed `seed`; the engine keeps that model for later calls with the
  // same source.
  absl::StatusOr<MeasurementResult> Measure(
      const MeasurementRequest& request, const ModelSource& source,
      uint64_t seed, const Progress& progress = Progress()) {
    torch::manual_seed(seed);
    return engine_->Measure(source, GaussianRegression(), request, progress);
  }

  std::unique_ptr<Engine> engine_;
};

}  // namespace curvd::core::testing

#endif  // CURVD_TESTS_CORE_ENGINE_SOURCES_H_

// The model and shard sources the engine tests measure: zoo MLPs (weights from
// torch's global generator, which a test seeds so that the engine and a
// reference build the same model) and the built-in Gaussian regression shard.
#ifndef CURVD_TESTS_CORE_ENGINE_SOURCES_H_
#define CURVD_TESTS_CORE_ENGINE_SOURCES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/sources.h"

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

}  // namespace curvd::core::testing

#endif  // CURVD_TESTS_CORE_ENGINE_SOURCES_H_

#include "client/zoo_weights.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/api/safetensors.h"

namespace curvd::client {

namespace v1 = ::curvd::v1;

absl::StatusOr<v1::ZooModel> ParseZooSpec(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() < 2 || parts.size() > 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "zoo spec '", text, "' is not ARCH:WIDTHS[:ACTIVATION], e.g. ",
        "mlp:784,128,10:tanh"));
  }
  v1::ZooModel model;
  if (parts[0] != "mlp") {
    return absl::InvalidArgumentError(absl::StrCat(
        "zoo architecture '", parts[0], "' is unknown (v1 has: mlp)"));
  }
  model.set_architecture(parts[0]);
  for (absl::string_view width_text : absl::StrSplit(parts[1], ',')) {
    int64_t width;
    if (!absl::SimpleAtoi(width_text, &width) || width < 1 ||
        width > (1 << 20)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "zoo width '", width_text, "' is not an integer in [1, 1048576]"));
    }
    model.add_layer_widths(width);
  }
  if (model.layer_widths_size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "zoo spec '", text, "' needs at least two widths (input and output)"));
  }
  const std::string activation = parts.size() == 3 ? parts[2] : "tanh";
  if (activation != "tanh" && activation != "relu" && activation != "gelu") {
    return absl::InvalidArgumentError(absl::StrCat(
        "zoo activation '", activation, "' is unknown (tanh, relu, gelu)"));
  }
  model.set_activation(activation);
  return model;
}

absl::StatusOr<std::string> InitialZooWeights(const v1::ZooModel& model,
                                              uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::vector<core::SafetensorsTensor> tensors;
  for (int i = 0; i + 1 < model.layer_widths_size(); ++i) {
    const int64_t fan_in = model.layer_widths(i);
    const int64_t fan_out = model.layer_widths(i + 1);
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    std::uniform_real_distribution<float> uniform(-bound, bound);
    auto make = [&](const std::string& name, std::vector<int64_t> shape,
                    int64_t count) {
      std::vector<float> values(count);
      for (float& v : values) v = uniform(engine);
      core::SafetensorsTensor tensor;
      tensor.name = name;
      tensor.dtype = "F32";
      tensor.shape = std::move(shape);
      tensor.data.resize(values.size() * sizeof(float));
      std::memcpy(tensor.data.data(), values.data(), tensor.data.size());
      return tensor;
    };
    tensors.push_back(make(absl::StrCat("fc", i, ".weight"), {fan_out, fan_in},
                           fan_out * fan_in));
    tensors.push_back(make(absl::StrCat("fc", i, ".bias"), {fan_out}, fan_out));
  }
  return core::SerializeSafetensors(tensors);
}

}  // namespace curvd::client

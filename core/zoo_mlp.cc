#include "core/zoo_mlp.h"

#include <torch/nn/functional/activation.h>

#include "absl/strings/str_cat.h"

namespace curvd::core {

namespace {
// Widths beyond this would make a single layer larger than any shard's model
// the service is meant for; the bound keeps a bad spec from allocating
// terabytes.
constexpr int64_t kMaxWidth = int64_t{1} << 20;
// Widths each in range can still multiply to terabytes of weights.
constexpr int64_t kMaxParameters = int64_t{1} << 31;
}  // namespace

ZooMlpImpl::ZooMlpImpl(const ZooSpec& spec) : activation_(spec.activation) {
  for (size_t i = 0; i + 1 < spec.layer_widths.size(); ++i) {
    layers_.push_back(register_module(
        absl::StrCat("fc", i),
        torch::nn::Linear(spec.layer_widths[i], spec.layer_widths[i + 1])));
  }
}

torch::Tensor ZooMlpImpl::forward(torch::Tensor x) {
  x = x.flatten(1);
  for (size_t i = 0; i < layers_.size(); ++i) {
    x = layers_[i]->forward(x);
    if (i + 1 == layers_.size()) break;
    if (activation_ == "tanh") {
      x = torch::tanh(x);
    } else if (activation_ == "relu") {
      x = torch::relu(x);
    } else {
      x = torch::gelu(x);
    }
  }
  return x;
}

absl::Status ValidateZooSpec(const ZooSpec& spec) {
  if (spec.architecture != "mlp") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown zoo architecture '", spec.architecture,
                     "': only \"mlp\" is available"));
  }
  if (spec.layer_widths.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "zoo mlp needs at least 2 layer widths (input and output), got ",
        spec.layer_widths.size()));
  }
  for (size_t i = 0; i < spec.layer_widths.size(); ++i) {
    const int64_t width = spec.layer_widths[i];
    if (width < 1 || width > kMaxWidth) {
      return absl::InvalidArgumentError(
          absl::StrCat("zoo mlp layer_widths[", i, "] = ", width,
                       " must be in [1, ", kMaxWidth, "]"));
    }
  }
  int64_t parameters = 0;
  for (size_t i = 0; i + 1 < spec.layer_widths.size(); ++i) {
    parameters += (spec.layer_widths[i] + 1) * spec.layer_widths[i + 1];
    if (parameters > kMaxParameters) {
      return absl::InvalidArgumentError(
          absl::StrCat("zoo mlp has more than the limit of ", kMaxParameters,
                       " parameters"));
    }
  }
  if (spec.activation != "tanh" && spec.activation != "relu" &&
      spec.activation != "gelu") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown zoo activation '", spec.activation,
                     "': expected tanh, relu or gelu"));
  }
  return absl::OkStatus();
}

}  // namespace curvd::core

#include "core/measurements/gop_fast_path.h"

#include <torch/torch.h>

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/data/model.h"

namespace curvd::core {
namespace {

// Where a parameter is among `layers`: its layer and whether it is the bias.
std::optional<LinearGopFeatures::Part> FindLinearParameter(
    const std::vector<LinearLayer>& layers, const std::string& name) {
  for (size_t l = 0; l < layers.size(); ++l) {
    if (layers[l].weight == name) return LinearGopFeatures::Part{l, false};
    if (!layers[l].bias.empty() && layers[l].bias == name) {
      return LinearGopFeatures::Part{l, true};
    }
  }
  return std::nullopt;
}

// The block's parameters located among the model's Linear layers (Part.layer
// indexes the model's LinearLayers() here), or InvalidArgument naming the
// first that is not a Linear layer's.
absl::StatusOr<std::vector<LinearGopFeatures::Part>> LocateBlock(
    Objective& objective) {
  const std::vector<LinearLayer> layers = objective.model()->LinearLayers();
  if (layers.empty()) {
    return absl::InvalidArgumentError(
        "gop.path = fast: the model records no Linear layers (the fast path "
        "covers the zoo MLP's); use path auto or generic");
  }
  std::vector<LinearGopFeatures::Part> parts;
  for (const std::string& name : GopBlockNames(objective)) {
    const std::optional<LinearGopFeatures::Part> part =
        FindLinearParameter(layers, name);
    if (!part) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gop.path = fast: parameter '", name,
          "' is not the weight or bias of a Linear layer the model records; "
          "use path auto or generic"));
    }
    parts.push_back(*part);
  }
  return parts;
}

// The number of parameters of a part of a layer with features of these
// widths.
int64_t PartSize(const LinearGopFeatures::Part& part,
                 const LinearGopFeatures::Layer& layer) {
  const int64_t outputs = layer.output_gradients.size(1);
  return part.bias ? outputs : outputs * layer.inputs.size(1);
}

}  // namespace

absl::Status GopFastPathApplies(Objective& objective, int64_t num_samples,
                                int64_t max_gradient_floats) {
  CURVD_ASSIGN_OR_RETURN(const std::vector<LinearGopFeatures::Part> parts,
                         LocateBlock(objective));
  // Each layer's widths from its weight [d_out, d_in], counted once; a
  // bias alone gives d_out and counts d_in too (it is recorded all the same).
  const std::vector<torch::Tensor> parameters = objective.model()->Parameters();
  const std::vector<std::string> names = objective.model()->ParameterNames();
  const std::vector<LinearLayer> layers = objective.model()->LinearLayers();
  std::vector<bool> counted(layers.size(), false);
  int64_t widths = 0;
  for (const LinearGopFeatures::Part& part : parts) {
    if (counted[part.layer]) continue;
    counted[part.layer] = true;
    const auto weight =
        std::find(names.begin(), names.end(), layers[part.layer].weight);
    const torch::Tensor& w = parameters[weight - names.begin()];
    widths += w.size(0) + w.size(1);
  }
  if (num_samples * widths > max_gradient_floats) {
    return absl::InvalidArgumentError(
        absl::StrCat("gop.path = fast: the layers' features, N x ", widths,
                     " = ", num_samples * widths,
                     " floats, exceed the cap gop.max_gradient_floats = ",
                     max_gradient_floats, "; use path auto or generic"));
  }
  return absl::OkStatus();
}

absl::StatusOr<LinearGopFeatures> ComputeLinearGopFeatures(
    Objective& objective, const std::vector<int64_t>& samples,
    const Progress& progress) {
  CURVD_ASSIGN_OR_RETURN(std::vector<LinearGopFeatures::Part> parts,
                         LocateBlock(objective));
  // The block's layers in model order, and the model's index of each.
  LinearGopFeatures features;
  std::vector<size_t> model_layer;
  for (LinearGopFeatures::Part& part : parts) {
    size_t index =
        std::find(model_layer.begin(), model_layer.end(), part.layer) -
        model_layer.begin();
    if (index == model_layer.size()) model_layer.push_back(part.layer);
    part.layer = index;
  }
  features.parts = std::move(parts);
  features.layers.resize(model_layer.size());

  const int64_t n = static_cast<int64_t>(samples.size());
  const torch::Tensor indices =
      torch::tensor(samples, torch::kInt64).to(objective.inputs().device());
  const torch::TensorOptions float64 =
      objective.vector_options().dtype(torch::kFloat64);
  const int64_t batch = objective.micro_batch_size();
  for (int64_t start = 0; start < n; start += batch) {
    CURVD_RETURN_IF_ERROR(
        GopProgressStep(progress, start, n, "micro-batch from sample"));
    const int64_t count = std::min(batch, n - start);
    const torch::Tensor chosen = indices.narrow(0, start, count);
    std::vector<LinearActivations> recorded;
    const torch::Tensor outputs = objective.model()->ForwardRecordingLinear(
        objective.inputs().index_select(0, chosen), &recorded);
    // The mean of the count one-sample losses: each sample's MeanLoss, as
    // the generic path differentiates it, is this batch's times count.
    const torch::Tensor loss = MeanLoss(
        outputs, objective.targets().index_select(0, chosen), objective.loss());
    std::vector<torch::Tensor> layer_outputs;
    for (size_t l : model_layer) layer_outputs.push_back(recorded[l].output);
    const std::vector<torch::Tensor> gradients =
        torch::autograd::grad({loss}, layer_outputs, {}, /*retain_graph=*/false,
                              /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t l = 0; l < model_layer.size(); ++l) {
      LinearGopFeatures::Layer& layer = features.layers[l];
      const LinearActivations& seen = recorded[model_layer[l]];
      if (start == 0) {
        layer.inputs = torch::zeros({n, seen.input.size(1)}, float64);
        layer.output_gradients =
            torch::zeros({n, seen.output.size(1)}, float64);
      }
      layer.inputs.narrow(0, start, count).copy_(seen.input.detach());
      if (gradients[l].defined()) {
        layer.output_gradients.narrow(0, start, count)
            .copy_(gradients[l])
            .mul_(static_cast<double>(count));
      }
    }
  }
  return features;
}

absl::StatusOr<GopGrams> LinearGopGramMatrices(
    const LinearGopFeatures& features, const std::vector<GopGroup>& groups) {
  const torch::Tensor& first = features.layers.front().inputs;
  const int64_t n = first.size(0);
  GopGrams grams;
  grams.whole = torch::zeros({n, n}, first.options());
  for (size_t g = 0; g < groups.size(); ++g) {
    grams.groups.push_back(torch::zeros({n, n}, first.options()));
  }
  // The layer whose B B^T (and A A^T when asked) are at hand: a layer's
  // parts are consecutive.
  std::optional<size_t> current;
  torch::Tensor outer_b, outer_a;
  int64_t offset = 0;
  for (const LinearGopFeatures::Part& part : features.parts) {
    const LinearGopFeatures::Layer& layer = features.layers[part.layer];
    if (current != part.layer) {
      current = part.layer;
      outer_b = layer.output_gradients.mm(layer.output_gradients.t());
      outer_a = torch::Tensor();
    }
    if (!part.bias && !outer_a.defined()) {
      outer_a = layer.inputs.mm(layer.inputs.t());
    }
    const torch::Tensor gram = part.bias ? outer_b : outer_a * outer_b;
    grams.whole.add_(gram);
    for (size_t g = 0; g < groups.size(); ++g) {
      if (offset >= groups[g].offset &&
          offset < groups[g].offset + groups[g].size) {
        grams.groups[g].add_(gram);
      }
    }
    offset += PartSize(part, layer);
  }
  if (!torch::isfinite(grams.whole).all().item<bool>()) {
    return absl::InvalidArgumentError(
        "gop: a per-sample gradient is not finite");
  }
  return grams;
}

torch::Tensor LinearGopGradientTransposeTimes(const LinearGopFeatures& features,
                                              const torch::Tensor& w) {
  std::vector<torch::Tensor> rows;
  for (const LinearGopFeatures::Part& part : features.parts) {
    const LinearGopFeatures::Layer& layer = features.layers[part.layer];
    const torch::Tensor& b = layer.output_gradients;
    if (part.bias) {
      rows.push_back(b.t().mm(w));  // [d_out, k]
      continue;
    }
    // Column j: sum_i w_ij b_i a_i^T = B^T diag(w_j) A, flattened row-major
    // as the weight [d_out, d_in] is.
    std::vector<torch::Tensor> columns;
    for (int64_t j = 0; j < w.size(1); ++j) {
      columns.push_back(
          (b * w.select(1, j).unsqueeze(1)).t().mm(layer.inputs).reshape({-1}));
    }
    rows.push_back(torch::stack(columns, 1));  // [d_out * d_in, k]
  }
  return torch::cat(rows);
}

}  // namespace curvd::core

#include "core/measurements/gop_fast_path.h"

#include <torch/torch.h>

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace curvd::core {
namespace {

using Kind = RecordedLayer::Kind;

// Where a parameter is among `layers`: its layer and whether it is the bias.
std::optional<LinearGopFeatures::Part> FindRecordedParameter(
    const std::vector<RecordedLayer>& layers, const std::string& name) {
  for (size_t l = 0; l < layers.size(); ++l) {
    if (layers[l].weight == name) return LinearGopFeatures::Part{l, false};
    if (!layers[l].bias.empty() && layers[l].bias == name) {
      return LinearGopFeatures::Part{l, true};
    }
  }
  return std::nullopt;
}

// The block's parameters located among the model's recorded layers
// (Part.layer indexes the model's RecordedLayers() here), or InvalidArgument
// naming the first that is not a recorded layer's.
absl::StatusOr<std::vector<LinearGopFeatures::Part>> LocateBlock(
    Objective& objective, const std::vector<RecordedLayer>& layers) {
  if (layers.empty()) {
    return absl::InvalidArgumentError(
        "gop.path = fast: the model records no layers the fast path covers "
        "(Linear, Embedding, LayerNorm, Conv2d, an added parameter; "
        "TorchScript in eval mode: in train mode BatchNorm's batch statistics "
        "couple a batch's samples and dropout draws per batch); use path auto "
        "or generic");
  }
  std::vector<LinearGopFeatures::Part> parts;
  for (const std::string& name : GopBlockNames(objective)) {
    const std::optional<LinearGopFeatures::Part> part =
        FindRecordedParameter(layers, name);
    if (!part) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gop.path = fast: parameter '", name,
          "' is not the weight or bias of a layer the model records (Linear, "
          "Embedding, LayerNorm, Conv2d with one group, an added parameter, "
          "each its parameters' only use; not BatchNorm, whose batch "
          "statistics couple a batch's samples in train mode); use path auto "
          "or generic"));
    }
    parts.push_back(*part);
  }
  return parts;
}

// The model's layers that `parts` use, in model order, with the parts
// re-pointed to that list.
std::vector<size_t> UsedLayers(std::vector<LinearGopFeatures::Part>* parts) {
  std::vector<size_t> used;
  for (LinearGopFeatures::Part& part : *parts) {
    size_t index =
        std::find(used.begin(), used.end(), part.layer) - used.begin();
    if (index == used.size()) used.push_back(part.layer);
    part.layer = index;
  }
  return used;
}

torch::Tensor ParameterNamed(Objective& objective, const std::string& name) {
  const std::vector<std::string> names = objective.model()->ParameterNames();
  return objective.model()
      ->Parameters()[std::find(names.begin(), names.end(), name) -
                     names.begin()];
}

// OK when `seen`, from a pass over `count` samples, has a leading sample
// dimension, a kAdd or kLayerNorm parameter `weight` the trailing shape of
// its output and a kConv2d layer an input [count, C, H, W].
absl::Status CheckActivations(const RecordedLayer& layer,
                              const LayerActivations& seen,
                              const torch::Tensor& weight, int64_t count) {
  const torch::Tensor& y = seen.output;
  const bool batched = y.dim() >= 2 && y.size(0) == count &&
                       (!seen.input.defined() ||
                        (seen.input.dim() >= 1 && seen.input.size(0) == count));
  bool shaped = true;
  if (layer.kind == Kind::kAdd || layer.kind == Kind::kLayerNorm) {
    shaped = y.dim() > weight.dim() &&
             y.sizes().slice(y.dim() - weight.dim()) == weight.sizes();
  } else if (layer.kind == Kind::kConv2d) {
    shaped = seen.input.dim() == 4;
  }
  if (batched && shaped) return absl::OkStatus();
  const char* why =
      layer.kind == Kind::kAdd
          ? " or its parameter is broadcast within a sample"
          : (layer.kind == Kind::kConv2d ? " or is no batched 2-d convolution"
                                         : "");
  return absl::InvalidArgumentError(
      absl::StrCat("gop.path = fast: the layer of '", layer.weight,
                   "' does not record a leading sample dimension",
                   batched ? why : "", "; use path auto or generic"));
}

// The per-sample floats that `seen` (of one sample) leaves among the
// features of a layer with parameters `weight` and `bias` (undefined
// without one).
int64_t FeatureFloats(const RecordedLayer& layer, const LayerActivations& seen,
                      const torch::Tensor& weight, const torch::Tensor& bias) {
  if (layer.kind == Kind::kLinear || layer.kind == Kind::kEmbedding) {
    return seen.input.numel() + seen.output.numel();
  }
  return weight.numel() + (bias.defined() ? bias.numel() : 0);
}

// [count, width]: t [count, ..., width] summed over the dimensions between.
torch::Tensor SumOverTokens(const torch::Tensor& t, int64_t width) {
  return t.reshape({t.size(0), -1, width}).sum(1);
}

// x normalised as layer_norm does, over its trailing `dims` dimensions (the
// biased variance), in float64.
torch::Tensor Normalised(const torch::Tensor& x, int64_t dims, double eps) {
  const torch::Tensor x64 = x.detach().to(torch::kFloat64);
  std::vector<int64_t> trailing;
  for (int64_t d = x.dim() - dims; d < x.dim(); ++d) trailing.push_back(d);
  const torch::Tensor centred = x64 - x64.mean(trailing, /*keepdim=*/true);
  return centred *
         (centred.square().mean(trailing, /*keepdim=*/true) + eps).rsqrt();
}

// A Conv2d layer's per-sample weight gradients [count, P] for its input x
// [count, C_in, H, W] and output gradients b [count, C_out, H', W'] float64:
// B_i U_i^T, U_i = im2col(x_i) [C_in kh kw, L] (its rows ordered as the
// weight's (c, kh, kw)), a few samples at a time, so that the unfolded
// inputs take at most the result's floats (at least one sample's).
torch::Tensor ConvWeightGradients(const RecordedLayer& layer,
                                  const torch::Tensor& x,
                                  const torch::Tensor& b,
                                  const torch::Tensor& weight) {
  const int64_t count = x.size(0);
  const int64_t outputs = weight.size(0);
  const int64_t unfolded = weight.numel() / outputs * b.size(2) * b.size(3);
  const int64_t chunk = std::max<int64_t>(
      1, count * weight.numel() / std::max<int64_t>(1, unfolded));
  torch::Tensor gradients =
      torch::empty({count, outputs, weight.numel() / outputs}, b.options());
  for (int64_t start = 0; start < count; start += chunk) {
    const int64_t c = std::min(chunk, count - start);
    const torch::Tensor u = torch::im2col(
        x.narrow(0, start, c).detach().to(torch::kFloat64),
        {weight.size(2), weight.size(3)}, layer.dilation, layer.padding,
        layer.stride);  // [c, C_in kh kw, L]
    gradients.narrow(0, start, c)
        .copy_(b.narrow(0, start, c)
                   .reshape({c, outputs, -1})
                   .bmm(u.transpose(1, 2)));
  }
  return gradients.reshape({count, -1});
}

// The features of one micro-batch of `layer` (as LinearGopFeatures::Layer
// holds them, for its `count` samples) from what it saw and its output
// gradient b (float64, y's shape), `weight` its weight parameter.
LinearGopFeatures::Layer MicroBatchFeatures(const RecordedLayer& layer,
                                            const LayerActivations& seen,
                                            torch::Tensor b,
                                            const torch::Tensor& weight) {
  LinearGopFeatures::Layer features;
  features.kind = layer.kind;
  features.vocabulary = weight.size(0);
  const bool has_bias = !layer.bias.empty();
  switch (layer.kind) {
    case Kind::kLinear:
      features.inputs = seen.input.detach().to(torch::kFloat64);
      features.output_gradients = b;
      break;
    case Kind::kEmbedding:
      if (layer.padding_idx >= 0) {
        b.mul_(
            seen.input.ne(layer.padding_idx).unsqueeze(-1).to(torch::kFloat64));
      }
      features.inputs = seen.input.detach().to(torch::kInt64);
      features.output_gradients = b;
      break;
    case Kind::kAdd:
      features.weight_gradients = SumOverTokens(b, weight.numel());
      break;
    case Kind::kLayerNorm:
      features.weight_gradients = SumOverTokens(
          b * Normalised(seen.input, weight.dim(), layer.eps), weight.numel());
      if (has_bias) features.bias_gradients = SumOverTokens(b, weight.numel());
      break;
    case Kind::kConv2d:
      features.weight_gradients =
          ConvWeightGradients(layer, seen.input, b, weight);
      if (has_bias) features.bias_gradients = b.sum({2, 3});
      break;
  }
  return features;
}

// Rows [start, start + rows.size(0)) of *all [n, ...] set to `rows`, *all
// made (of rows' dtype and device) when undefined; nothing when rows is.
void SetRows(const torch::Tensor& rows, int64_t start, int64_t n,
             torch::Tensor* all) {
  if (!rows.defined()) return;
  if (!all->defined()) {
    std::vector<int64_t> shape = rows.sizes().vec();
    shape[0] = n;
    *all = torch::empty(shape, rows.options());
  }
  all->narrow(0, start, rows.size(0)).copy_(rows);
}

// The formed per-sample gradients [N, P] of a part, or null where the layer
// keeps its inputs and output gradients instead (kLinear, kEmbedding).
const torch::Tensor* FormedGradients(const LinearGopFeatures::Part& part,
                                     const LinearGopFeatures::Layer& layer) {
  if (!layer.weight_gradients.defined()) return nullptr;
  return part.bias ? &layer.bias_gradients : &layer.weight_gradients;
}

// [N, T, width]: the tokens of each sample as rows (T = 1 for vectors).
torch::Tensor TokenRows(const torch::Tensor& t, int64_t width) {
  return t.reshape({t.size(0), -1, width});
}

// sum_{t,s} factor(t, s) * (B_t B_s^T) over the token pairs, B [N, T, d].
// Accumulated in place: two N x N temporaries beside the sum, not three.
template <typename Factor>
torch::Tensor TokenPairGram(const torch::Tensor& b, const Factor& factor) {
  torch::Tensor gram;
  for (int64_t t = 0; t < b.size(1); ++t) {
    for (int64_t s = 0; s < b.size(1); ++s) {
      torch::Tensor outer = b.select(1, t).mm(b.select(1, s).t());
      if (gram.defined()) {
        gram.addcmul_(factor(t, s), outer);
      } else {
        gram = outer.mul_(factor(t, s));
      }
    }
  }
  return gram;
}

// The Gram matrix of one part's per-sample gradients.
torch::Tensor PartGram(const LinearGopFeatures::Part& part,
                       const LinearGopFeatures::Layer& layer) {
  if (const torch::Tensor* formed = FormedGradients(part, layer)) {
    return formed->mm(formed->t());
  }
  const torch::Tensor& out = layer.output_gradients;
  const torch::Tensor b = TokenRows(out, out.size(-1));
  if (part.bias) {
    const torch::Tensor sums = b.sum(1);
    return sums.mm(sums.t());
  }
  if (layer.kind == Kind::kEmbedding) {
    const torch::Tensor ids = layer.inputs.reshape({b.size(0), -1});
    return TokenPairGram(b, [&](int64_t t, int64_t s) {
      return ids.select(1, t)
          .unsqueeze(1)
          .eq(ids.select(1, s).unsqueeze(0))
          .to(b.scalar_type());
    });
  }
  const torch::Tensor a = TokenRows(layer.inputs, layer.inputs.size(-1));
  return TokenPairGram(b, [&](int64_t t, int64_t s) {
    return a.select(1, t).mm(a.select(1, s).t());
  });
}

// The number of parameters of a part of a layer with these features.
int64_t PartSize(const LinearGopFeatures::Part& part,
                 const LinearGopFeatures::Layer& layer) {
  if (const torch::Tensor* formed = FormedGradients(part, layer)) {
    return formed->size(1);
  }
  const int64_t outputs = layer.output_gradients.size(-1);
  if (layer.kind == Kind::kEmbedding) return layer.vocabulary * outputs;
  return part.bias ? outputs : outputs * layer.inputs.size(-1);
}

}  // namespace

absl::Status GopFastPathApplies(Objective& objective, int64_t num_samples,
                                int64_t max_gradient_floats) {
  const std::vector<RecordedLayer> layers = objective.model()->RecordedLayers();
  CURVD_ASSIGN_OR_RETURN(std::vector<LinearGopFeatures::Part> parts,
                         LocateBlock(objective, layers));
  std::vector<LayerActivations> recorded;
  {
    const torch::NoGradGuard no_grad;
    objective.model()->ForwardRecording(objective.inputs().narrow(0, 0, 1),
                                        &recorded);
  }
  int64_t widths = 0;
  for (size_t l : UsedLayers(&parts)) {
    const torch::Tensor weight = ParameterNamed(objective, layers[l].weight);
    CURVD_RETURN_IF_ERROR(CheckActivations(layers[l], recorded[l], weight, 1));
    widths += FeatureFloats(layers[l], recorded[l], weight,
                            layers[l].bias.empty()
                                ? torch::Tensor()
                                : ParameterNamed(objective, layers[l].bias));
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
  const std::vector<RecordedLayer> layers = objective.model()->RecordedLayers();
  CURVD_ASSIGN_OR_RETURN(std::vector<LinearGopFeatures::Part> parts,
                         LocateBlock(objective, layers));
  // The block's layers in model order, and the model's index of each.
  LinearGopFeatures features;
  const std::vector<size_t> model_layer = UsedLayers(&parts);
  features.parts = std::move(parts);
  features.layers.resize(model_layer.size());
  std::vector<torch::Tensor> parameters;
  for (size_t l : model_layer) {
    parameters.push_back(ParameterNamed(objective, layers[l].weight));
  }

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
    std::vector<LayerActivations> recorded;
    const torch::Tensor outputs = objective.model()->ForwardRecording(
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
      const RecordedLayer& recorded_layer = layers[model_layer[l]];
      const LayerActivations& seen = recorded[model_layer[l]];
      CURVD_RETURN_IF_ERROR(
          CheckActivations(recorded_layer, seen, parameters[l], count));
      const LinearGopFeatures::Layer rows = MicroBatchFeatures(
          recorded_layer, seen,
          gradients[l].defined()
              ? gradients[l].to(torch::kFloat64) * static_cast<double>(count)
              : torch::zeros_like(seen.output, float64),
          parameters[l]);
      LinearGopFeatures::Layer& layer = features.layers[l];
      layer.kind = rows.kind;
      layer.vocabulary = rows.vocabulary;
      SetRows(rows.inputs, start, n, &layer.inputs);
      SetRows(rows.output_gradients, start, n, &layer.output_gradients);
      SetRows(rows.weight_gradients, start, n, &layer.weight_gradients);
      SetRows(rows.bias_gradients, start, n, &layer.bias_gradients);
    }
  }
  return features;
}

absl::StatusOr<GopGrams> LinearGopGramMatrices(
    const LinearGopFeatures& features, const std::vector<GopGroup>& groups) {
  const LinearGopFeatures::Layer& front = features.layers.front();
  const torch::Tensor& first = front.weight_gradients.defined()
                                   ? front.weight_gradients
                                   : front.output_gradients;
  const int64_t n = first.size(0);
  GopGrams grams;
  grams.whole = torch::zeros({n, n}, first.options());
  for (size_t g = 0; g < groups.size(); ++g) {
    grams.groups.push_back(torch::zeros({n, n}, first.options()));
  }
  int64_t offset = 0;
  for (const LinearGopFeatures::Part& part : features.parts) {
    const LinearGopFeatures::Layer& layer = features.layers[part.layer];
    const torch::Tensor gram = PartGram(part, layer);
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
    if (const torch::Tensor* formed = FormedGradients(part, layer)) {
      rows.push_back(formed->t().mm(w));  // [P, k]
      continue;
    }
    const torch::Tensor& out = layer.output_gradients;
    const torch::Tensor b = TokenRows(out, out.size(-1));
    if (part.bias) {
      rows.push_back(b.sum(1).t().mm(w));  // [d_out, k]
      continue;
    }
    // Column j: sum_{i,t} w_ij b_it a_it^T = B^T diag(w_j) A over the token
    // rows, flattened row-major as the weight [d_out, d_in] is; an
    // Embedding's a_it is the one-hot row of id_it.
    const int64_t tokens = b.size(1);
    const torch::Tensor token_rows = b.reshape({-1, b.size(2)});
    const torch::Tensor token_weights = w.repeat_interleave(tokens, 0);
    std::vector<torch::Tensor> columns;
    for (int64_t j = 0; j < w.size(1); ++j) {
      const torch::Tensor weighted =
          token_rows * token_weights.select(1, j).unsqueeze(1);
      columns.push_back(
          layer.kind == Kind::kEmbedding
              ? torch::zeros({layer.vocabulary, b.size(2)}, b.options())
                    .index_add_(0, layer.inputs.reshape({-1}), weighted)
                    .reshape({-1})
              : weighted.t()
                    .mm(layer.inputs.reshape({-1, layer.inputs.size(-1)}))
                    .reshape({-1}));
    }
    rows.push_back(torch::stack(columns, 1));
  }
  return torch::cat(rows);
}

}  // namespace curvd::core

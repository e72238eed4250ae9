#include "core/data/torchscript_recording.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <algorithm>
#include <map>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/strings/str_join.h"

namespace curvd::core {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// What the inlined graph reads from `self`: which values are parameters (by
// name), and how often each parameter is read and used.
struct ParameterReads {
  std::map<const Value*, std::string> names;
  std::map<std::string, size_t> reads;
  std::map<std::string, size_t> uses;
  bool understood = true;  // false: a module escapes attribute reads
};

// The attribute path of `value` from the graph's `self` ("mlp_in.weight"),
// or nullopt when it is not a chain of attribute reads from it.
std::optional<std::string> AttributePath(const Value* value,
                                         const Value* self) {
  std::vector<std::string> path;
  while (value != self) {
    const Node* node = value->node();
    if (node->kind() != c10::prim::GetAttr) return std::nullopt;
    path.push_back(node->s(c10::attr::name));
    value = node->input(0);
  }
  std::reverse(path.begin(), path.end());
  return absl::StrJoin(path, ".");
}

// Whether every use of a module value reads an attribute of it.
bool OnlyAttributesRead(const Value* module) {
  return std::all_of(module->uses().begin(), module->uses().end(),
                     [](const torch::jit::Use& use) {
                       return use.user->kind() == c10::prim::GetAttr;
                     });
}

void CollectReads(torch::jit::Block* block, const Value* self,
                  const std::vector<std::string>& parameter_names,
                  ParameterReads* reads) {
  for (Node* node : block->nodes()) {
    if (node->isNondeterministic()) reads->understood = false;
    for (torch::jit::Block* inner : node->blocks()) {
      CollectReads(inner, self, parameter_names, reads);
    }
    if (node->kind() != c10::prim::GetAttr) continue;
    const Value* output = node->output();
    if (output->type()->cast<c10::ClassType>() && !OnlyAttributesRead(output)) {
      reads->understood = false;
    }
    const std::optional<std::string> path = AttributePath(output, self);
    if (!path || std::find(parameter_names.begin(), parameter_names.end(),
                           *path) == parameter_names.end()) {
      continue;
    }
    reads->names[output] = *path;
    ++reads->reads[*path];
    reads->uses[*path] += output->uses().size();
  }
}

// A recognised layer and the graph values to record for it.
struct Site {
  RecordedLayer layer;
  std::vector<Value*> recorded;
};

// The name of the parameter `value` is, when the site may own it: read once
// and used once (by the site).
std::optional<std::string> OwnedParameter(const Value* value,
                                          const ParameterReads& reads) {
  const auto name = reads.names.find(value);
  if (name == reads.names.end() || reads.reads.at(name->second) != 1 ||
      reads.uses.at(name->second) != 1) {
    return std::nullopt;
  }
  return name->second;
}

template <typename T>
std::optional<T> Constant(Value* value) {
  const auto constant = torch::jit::toIValue(value);  // c10:: or std::
  if (!constant) return std::nullopt;
  if constexpr (std::is_same_v<T, bool>) {
    if (constant->isBool()) return constant->toBool();
  } else if constexpr (std::is_same_v<T, double>) {
    if (constant->isDouble()) return constant->toDouble();
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    if (constant->isIntList()) return constant->toIntVector();
  } else {
    if (constant->isInt()) return constant->toInt();
  }
  return std::nullopt;
}

// A site of `kind` recording `node`'s input 0 and output, its weight the
// node's input `weight` and its bias input `bias` where that is a parameter
// (None, or any value not read as a parameter, leaves the weight's gradient
// as it is); none unless the site owns both.
std::optional<Site> WeightAndBiasSite(RecordedLayer::Kind kind, Node* node,
                                      size_t weight, size_t bias,
                                      const ParameterReads& reads) {
  const std::optional<std::string> weight_name =
      OwnedParameter(node->input(weight), reads);
  if (!weight_name) return std::nullopt;
  Site site{{kind, *weight_name, "", -1}, {node->input(0), node->output()}};
  if (reads.names.count(node->input(bias)) != 0) {
    const std::optional<std::string> bias_name =
        OwnedParameter(node->input(bias), reads);
    if (!bias_name) return std::nullopt;
    site.layer.bias = *bias_name;
  }
  return site;
}

// aten::layer_norm(input, normalized_shape, weight, bias, eps, cudnn_enable)
// with a weight (elementwise affine) and a constant eps.
std::optional<Site> LayerNormSite(Node* node, const ParameterReads& reads) {
  const std::optional<double> eps = Constant<double>(node->input(4));
  if (!eps) return std::nullopt;
  std::optional<Site> site =
      WeightAndBiasSite(RecordedLayer::Kind::kLayerNorm, node, 2, 3, reads);
  if (site) site->layer.eps = *eps;
  return site;
}

// A constant int[] of one or two entries as two (conv2d repeats a single
// one).
std::optional<std::vector<int64_t>> Pair(Value* value) {
  std::optional<std::vector<int64_t>> list =
      Constant<std::vector<int64_t>>(value);
  if (!list || list->empty() || list->size() > 2) return std::nullopt;
  if (list->size() == 1) list->push_back(list->front());
  return list;
}

// aten::conv2d(input, weight, bias, stride, padding, dilation, groups), or
// aten::_convolution(input, weight, bias, stride, padding, dilation,
// transposed, output_padding, groups, ...) not transposed (what tracing
// writes), with constant geometry (not a padding string) and one group.
std::optional<Site> ConvolutionSite(Node* node, const ParameterReads& reads) {
  const bool traced = node->kind() == c10::aten::_convolution;
  if (traced && Constant<bool>(node->input(6)) != false) return std::nullopt;
  const std::optional<std::vector<int64_t>> stride = Pair(node->input(3));
  const std::optional<std::vector<int64_t>> padding = Pair(node->input(4));
  const std::optional<std::vector<int64_t>> dilation = Pair(node->input(5));
  if (!stride || !padding || !dilation ||
      Constant<int64_t>(node->input(traced ? 8 : 6)) != 1) {
    return std::nullopt;
  }
  std::optional<Site> site =
      WeightAndBiasSite(RecordedLayer::Kind::kConv2d, node, 1, 2, reads);
  if (!site) return std::nullopt;
  site->layer.stride = *stride;
  site->layer.padding = *padding;
  site->layer.dilation = *dilation;
  return site;
}

std::optional<Site> EmbeddingSite(Node* node, const ParameterReads& reads) {
  const std::optional<std::string> weight =
      OwnedParameter(node->input(0), reads);
  const std::optional<int64_t> padding_idx = Constant<int64_t>(node->input(2));
  const std::optional<bool> by_frequency = Constant<bool>(node->input(3));
  if (!weight || !padding_idx || !by_frequency || *by_frequency) {
    return std::nullopt;
  }
  return Site{{RecordedLayer::Kind::kEmbedding, *weight, "", *padding_idx},
              {node->input(1), node->output()}};
}

std::optional<Site> AddSite(Node* node, const ParameterReads& reads) {
  if (node->inputs().size() != 3 || Constant<int64_t>(node->input(2)) != 1) {
    return std::nullopt;
  }
  for (size_t operand : {0, 1}) {
    const Value* other = node->input(1 - operand);
    if (!other->type()->cast<c10::TensorType>()) return std::nullopt;
    if (const auto parameter = OwnedParameter(node->input(operand), reads)) {
      return Site{{RecordedLayer::Kind::kAdd, *parameter, "", -1},
                  {node->output()}};
    }
  }
  return std::nullopt;
}

std::optional<Site> RecognisedSite(Node* node, const ParameterReads& reads) {
  if (node->kind() == c10::aten::linear && node->inputs().size() == 3) {
    return WeightAndBiasSite(RecordedLayer::Kind::kLinear, node, 1, 2, reads);
  }
  if (node->kind() == c10::aten::layer_norm && node->inputs().size() == 6) {
    return LayerNormSite(node, reads);
  }
  if ((node->kind() == c10::aten::conv2d && node->inputs().size() == 7) ||
      (node->kind() == c10::aten::_convolution &&
       node->inputs().size() >= 12)) {
    return ConvolutionSite(node, reads);
  }
  if (node->kind() == c10::aten::embedding && node->inputs().size() == 5) {
    return EmbeddingSite(node, reads);
  }
  if (node->kind() == c10::aten::add) return AddSite(node, reads);
  return std::nullopt;
}

// Whether a call is left in the block or those it holds.
bool HasCalls(torch::jit::Block* block) {
  for (Node* node : block->nodes()) {
    if (node->kind() == c10::prim::CallFunction ||
        node->kind() == c10::prim::CallMethod) {
      return true;
    }
    for (torch::jit::Block* inner : node->blocks()) {
      if (HasCalls(inner)) return true;
    }
  }
  return false;
}

// Inlines every call and folds constants. Inline takes each callee's
// cached optimised graph, itself inlined and folded only when it was made
// with the optimiser on (Forward runs with it off), hence the repetition
// and the folding here: either way F.embedding's padding_idx branches fold
// to a constant and the weight's uses in them go.
void InlineAndSimplify(std::shared_ptr<torch::jit::Graph>& graph) {
  constexpr int kMaxDepth = 16;
  for (int depth = 0; depth < kMaxDepth && HasCalls(graph->block()); ++depth) {
    torch::jit::Inline(*graph);
  }
  torch::jit::ConstantPropagation(graph);
  torch::jit::EliminateDeadCode(graph);
}

}  // namespace

TorchScriptRecording::TorchScriptRecording(
    const torch::jit::Module& module,
    const std::vector<std::string>& parameter_names) {
  std::shared_ptr<torch::jit::Graph> graph;
  try {
    graph = module.get_method("forward").graph()->copy();
    InlineAndSimplify(graph);
  } catch (const c10::Error&) {
    return;
  }
  if (graph->inputs().empty() || graph->outputs().size() != 1 ||
      !graph->outputs()[0]->type()->cast<c10::TensorType>()) {
    return;
  }
  const Value* self = graph->inputs()[0];
  ParameterReads reads;
  reads.understood = OnlyAttributesRead(self);
  CollectReads(graph->block(), self, parameter_names, &reads);
  if (!reads.understood) return;
  // Only top-level nodes: their values can become outputs of the graph.
  std::vector<Site> sites;
  for (Node* node : graph->nodes()) {
    if (std::optional<Site> site = RecognisedSite(node, reads)) {
      sites.push_back(*std::move(site));
    }
  }
  if (sites.empty()) return;
  const auto position = [&](const Site& site) {
    return std::find(parameter_names.begin(), parameter_names.end(),
                     site.layer.weight) -
           parameter_names.begin();
  };
  std::stable_sort(
      sites.begin(), sites.end(),
      [&](const Site& a, const Site& b) { return position(a) < position(b); });
  std::vector<Value*> outputs = {graph->outputs()[0]};
  for (const Site& site : sites) {
    layers_.push_back(site.layer);
    outputs.insert(outputs.end(), site.recorded.begin(), site.recorded.end());
  }
  const torch::jit::WithInsertPoint at_return(graph->return_node());
  Value* tuple = graph->insertNode(graph->createTuple(outputs))->output();
  graph->eraseOutput(0);
  graph->registerOutput(tuple);
  function_ = std::make_shared<torch::jit::GraphFunction>("forward_recording",
                                                          graph, nullptr);
}

torch::Tensor TorchScriptRecording::Forward(
    const torch::jit::Module& module, const torch::Tensor& inputs,
    std::vector<LayerActivations>* layers) {
  TORCH_CHECK(function_ != nullptr, "this model records no layers");
  const torch::jit::GraphOptimizerEnabledGuard unoptimised(false);
  torch::jit::Stack stack = {module._ivalue(), inputs};
  function_->run(stack);
  const c10::intrusive_ptr<c10::ivalue::Tuple> outputs = stack.back().toTuple();
  layers->clear();
  size_t next = 1;
  for (const RecordedLayer& layer : layers_) {
    LayerActivations seen;
    if (layer.kind != RecordedLayer::Kind::kAdd) {
      seen.input = outputs->elements()[next++].toTensor();
    }
    seen.output = outputs->elements()[next++].toTensor();
    layers->push_back(std::move(seen));
  }
  return outputs->elements()[0].toTensor();
}

}  // namespace curvd::core

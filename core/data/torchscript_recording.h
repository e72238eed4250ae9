// The layers of a TorchScript module's forward that the GOP's fast path
// accounts for (Model::RecordedLayers, docs/adr/0013), found in its inlined
// graph, and a forward pass that records what they see. Internal to core
// (includes torch).
#ifndef CURVD_CORE_DATA_TORCHSCRIPT_RECORDING_H_
#define CURVD_CORE_DATA_TORCHSCRIPT_RECORDING_H_

#include <torch/script.h>

#include <memory>
#include <string>
#include <vector>

#include "core/data/model.h"

namespace curvd::core {

class TorchScriptRecording {
 public:
  // The recorded layers of `module`'s forward, whose parameters are named
  // `parameter_names` (named_parameters order): the top-level calls of
  // aten::linear, aten::embedding, aten::add (alpha 1), aten::layer_norm
  // (with a weight) and aten::conv2d or aten::_convolution (one group, not
  // transposed, constant geometry) of the inlined graph whose weight (and
  // bias) are parameters, each used there alone (read once from `self`, with
  // no other use). aten::batch_norm is not among them. None when the forward returns no
  // Tensor, hands a submodule to anything but an attribute read, or has a
  // nondeterministic node. Never throws for a graph it does not understand:
  // it records nothing then.
  TorchScriptRecording(const torch::jit::Module& module,
                       const std::vector<std::string>& parameter_names);

  const std::vector<RecordedLayer>& layers() const { return layers_; }

  // module.forward(inputs) with *layers set as Model::ForwardRecording
  // promises, run unoptimised as TorchScriptModel::Forward is. Only where
  // layers() is not empty. May throw c10::Error.
  torch::Tensor Forward(const torch::jit::Module& module,
                        const torch::Tensor& inputs,
                        std::vector<LayerActivations>* layers);

 private:
  std::vector<RecordedLayer> layers_;
  // forward with its output replaced by the tuple (output, then per layer
  // its input unless kAdd and its output); null when layers_ is empty.
  std::shared_ptr<torch::jit::Function> function_;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_DATA_TORCHSCRIPT_RECORDING_H_

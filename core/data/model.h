// A model at a checkpoint, as the objective sees it: a forward function and an
// ordered list of parameters. Internal to core (includes torch).
#ifndef CURVD_CORE_DATA_MODEL_H_
#define CURVD_CORE_DATA_MODEL_H_

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/safetensors.h"
#include "core/api/sources.h"
#include "core/data/memory_budget.h"

namespace curvd::core {

// A layer of a model whose parameters' per-sample gradients follow from what
// it saw in a forward pass (Model::RecordedLayers), by the names of its
// parameters (Model::ParameterNames()).
struct RecordedLayer {
  enum class Kind {
    // y = a W^T + b over the last dimension of a [B, ..., d_in]: weight W
    // [d_out, d_in], bias b [d_out] or none.
    kLinear,
    // y = W[ids] for int64 ids [B, ...]: weight W [vocabulary, d]; ids equal
    // to padding_idx (when >= 0) take no gradient.
    kEmbedding,
    // y = x + p, the parameter p (the weight) of the trailing shape of x
    // [B, ..., *p.shape], broadcast over the leading dimensions.
    kAdd,
    // y = (x - mean) / sqrt(var + eps) * w + b, mean and (biased) var over
    // the trailing w.shape dimensions of x [B, ..., *w.shape]: weight w, bias
    // b of w's shape or none.
    kLayerNorm,
    // y = conv2d(x, W, b, stride, padding, dilation), one group, x [B, C_in,
    // H, W]: weight W [C_out, C_in, kh, kw], bias b [C_out] or none.
    kConv2d,
  };
  Kind kind = Kind::kLinear;
  std::string weight;
  std::string bias;  // empty when it has none (always for kEmbedding, kAdd)
  int64_t padding_idx = -1;  // kEmbedding only
  double eps = 0;            // kLayerNorm only
  // kConv2d only: (height, width) each.
  std::vector<int64_t> stride = {}, padding = {}, dilation = {};
};

// What one recorded layer saw in a forward pass (Model::ForwardRecording).
struct LayerActivations {
  // kLinear, kLayerNorm, kConv2d: x [B, ...] as the layer received it;
  // kEmbedding: the ids [B, ...]; kAdd: undefined.
  torch::Tensor input;
  torch::Tensor output;  // y [B, ...], in the pass's graph
};

class Model {
 public:
  virtual ~Model() = default;

  // Outputs for a batch of inputs (first dimension = samples). May throw
  // c10::Error on shape mismatch; callers catch at the engine boundary.
  virtual torch::Tensor Forward(const torch::Tensor& inputs) = 0;

  // The trainable parameters in a fixed order (the order of named_parameters);
  // the flat parameter vector is their concatenation. The tensors are the
  // model's own: writing into them changes the model.
  virtual std::vector<torch::Tensor> Parameters() = 0;
  virtual std::vector<std::string> ParameterNames() = 0;

  // Eval mode (default) or train mode, for dropout and BatchNorm.
  virtual void SetTrainMode(bool train) = 0;

  // Moves parameters and buffers to `device` and converts floating ones to
  // `dtype`.
  virtual void To(const torch::Device& device, torch::ScalarType dtype) = 0;

  // A copy with parameters and buffers of its own (the same values, device,
  // dtype and mode; leaves that require grad), so that chains can run side
  // by side on copies; null where the model cannot be copied (the default).
  virtual std::unique_ptr<Model> Clone() const { return nullptr; }

  // Whether ForwardChains evaluates several parameter sets in one pass.
  virtual bool SupportsChains() const { return false; }

  // The outputs [C, B, ...] of C parameter sets at once, chain c's
  // outputs[c] being what Forward(inputs[c]) gives with the parameters set to
  // chain c's: `chain_parameters` holds, per parameter in Parameters() order,
  // a [C, ...shape] tensor (any strides, e.g. views of one [C, P] tensor or a
  // parameter expanded over C), `inputs` is [C, B, ...]. Differentiable in
  // the chain parameters; the model's own parameters are not used. Only where
  // SupportsChains(); the default throws c10::Error, as do shapes that do not
  // fit.
  virtual torch::Tensor ForwardChains(
      const std::vector<torch::Tensor>& chain_parameters,
      const torch::Tensor& inputs);

  // The layers whose inputs and outputs ForwardRecording records, in
  // Parameters() order of their weights. The model promises, for each: its
  // parameters are used by that layer alone, so the outputs depend on them
  // only through y; sample i's y depends on sample i's input alone; and the
  // forward pass draws no randomness. Empty where the model records none (the
  // default).
  virtual std::vector<RecordedLayer> RecordedLayers() { return {}; }

  // Forward(inputs), setting *layers to each RecordedLayers() layer's input
  // and output in this pass, in that order. Only where RecordedLayers() is
  // not empty; the default throws c10::Error.
  virtual torch::Tensor ForwardRecording(const torch::Tensor& inputs,
                                         std::vector<LayerActivations>* layers);
};

// Builds the architecture and loads the weights of `source` on the CPU, its
// files opened beneath source.data_roots (core/api/data_roots.h) and read
// through the descriptors, every
// floating parameter and buffer in `dtype` (the measurement's: float64 for
// PRECISION_FLOAT64, else float32). Weights are converted only when no value
// changes: F16, BF16 and F32 always, F64 into float32 only when every value
// is a float32 (else InvalidArgument naming the tensor, its dtype, float32
// and the remedies, precision float64 or float32 weights), so float64 weights
// load losslessly into a float64 measurement and are never rounded silently.
// An archive is loaded by source.archive_checker's child process first
// (core/data/archive_check.h), when there is one: what it refuses, or crashes
// on, is InvalidArgument here too; the checker's other errors (a timeout, a
// checker that cannot run) keep their codes.
// InvalidArgument too for a corrupt or truncated archive, a state dict whose
// names or shapes do not match the model (the message names the first
// offender), a state dict header out of proportion to the model (over 1 MiB
// plus 16 KiB per tensor the model has), or NaN/Inf weights; NotFound for a
// missing file; the errors of core::OpenDataFile for a path that leads out of
// the roots. A zoo model's state dict is checked against the declared shapes
// before the model is built. `budget` is charged with the parameters (a zoo
// model's from its declared shapes, an archive's by its size), then the state
// dict's tensors, each before it is allocated: ResourceExhausted when one does
// not fit. A zoo source without a state dict keeps LibTorch's default
// initialisation (reproducible via torch::manual_seed).
absl::StatusOr<std::unique_ptr<Model>> LoadModel(const ModelSource& source,
                                                 torch::ScalarType dtype,
                                                 MemoryBudget& budget);
// The same without a budget.
absl::StatusOr<std::unique_ptr<Model>> LoadModel(
    const ModelSource& source, torch::ScalarType dtype = torch::kFloat32);

// A tensor of a safetensors file as a CPU torch tensor of the same dtype and
// shape (a copy). InvalidArgument for dtypes torch lacks (U16/U32/U64) or a
// data size that does not match the shape.
absl::StatusOr<torch::Tensor> TensorFromSafetensors(
    const SafetensorsTensor& tensor);

// The torch dtype of the safetensors dtype of tensor `name`; InvalidArgument
// for dtypes torch lacks (U16/U32/U64).
absl::StatusOr<torch::ScalarType> TorchDtypeOf(const std::string& dtype,
                                               const std::string& name);

// Rows [begin, begin + count) of `entry` of the safetensors file open at `fd`
// (begin 0 and count 1 for a scalar), read straight into a new CPU tensor of
// its dtype: the one copy. The caller keeps the rows within the entry's
// shape. Errors as TorchDtypeOf, DataLoss naming `name` for a failed read.
absl::StatusOr<torch::Tensor> ReadSafetensorsRows(
    int fd, const SafetensorsEntry& entry, int64_t begin, int64_t count,
    const std::string& name);

}  // namespace curvd::core

#endif  // CURVD_CORE_DATA_MODEL_H_

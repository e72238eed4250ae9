// The GOP's fast path (docs/adr/0013) for blocks of the parameters of the
// layers a model records (Model::RecordedLayers: the zoo MLP's Linear layers;
// a TorchScript model's Linear, Embedding, LayerNorm, Conv2d and added
// parameters): the Gram matrices of the per-sample gradients from each
// layer's inputs and output gradients b_it = dl_i/dy_it (t the tokens of
// sample i, one where y_i is a vector), forming no per-sample gradient of a
// Linear or Embedding layer:
//   Linear, g_i = (sum_t b_it a_it^T, sum_t b_it):
//     <g_i, g_j> = sum_{t,s} (a_it . a_js) (b_it . b_js)  +  (sum_t b_it) .
//     (sum_s b_js)
//   Embedding, g_i = sum_t e_{id_it} b_it^T:
//     <g_i, g_j> = sum_{t,s} [id_it = id_js] (b_it . b_js)
// and forming, [N, P] per parameter, the small ones of the others:
//   an added parameter p, g_i = b_i summed over the dimensions p is broadcast
//   over;
//   LayerNorm, g_i = (sum_t b_it * xhat_it, sum_t b_it), xhat the normalised
//   input recomputed from the recorded one;
//   Conv2d, g_i = (B_i U_i^T, B_i 1), U_i = im2col(x_i) [C_in kh kw, L] and
//   B_i [C_out, L] over the L output positions;
// <g_i, g_j> = g_i . g_j for those.
// One forward and one backward pass per micro-batch of the samples. It fills
// the same GopGrams as GopGramMatrices (gop.h), equal to them to rounding.
// Internal to core (includes torch).
#ifndef CURVD_CORE_MEASUREMENTS_GOP_FAST_PATH_H_
#define CURVD_CORE_MEASUREMENTS_GOP_FAST_PATH_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/data/model.h"
#include "core/measurements/gop.h"
#include "core/objective/objective.h"

namespace curvd::core {

// OK when the fast path can measure `objective`'s block over `num_samples`
// samples: every block parameter is one of the model's RecordedLayers(), a
// forward pass of the first sample records them with a leading sample
// dimension (an added parameter of the trailing shape of its sum, a Conv2d
// input [1, C, H, W]), and the features they hold fit max_gradient_floats:
// num_samples times, per layer of the block, one sample's recorded input and
// output (Linear, Embedding) or the layer's parameters (the others). Else
// InvalidArgument saying which condition fails ("gop.path = fast: ...").
// That one forward pass runs without autograd.
absl::Status GopFastPathApplies(Objective& objective, int64_t num_samples,
                                int64_t max_gradient_floats);

// The per-sample inputs and output gradients of the block's layers.
struct LinearGopFeatures {
  struct Layer {
    RecordedLayer::Kind kind = RecordedLayer::Kind::kLinear;
    // kLinear: A [N, ..., d_in] float64, rows a_i; kEmbedding: the ids [N,
    // ...] int64; the other kinds: undefined.
    torch::Tensor inputs;
    // kLinear, kEmbedding: B [N, ..., d_out] float64, rows b_i (zero for an
    // embedding's padding ids); the other kinds: undefined.
    torch::Tensor output_gradients;
    // kAdd, kLayerNorm, kConv2d: the per-sample gradients [N, P] float64 of
    // the weight, and of the bias (undefined without one); the other kinds:
    // undefined.
    torch::Tensor weight_gradients;
    torch::Tensor bias_gradients;
    int64_t vocabulary = 0;  // kEmbedding: the weight's rows
  };
  // A block parameter, in block order: which layer and which of its two.
  struct Part {
    size_t layer;  // into layers
    bool bias;
  };
  std::vector<Layer> layers;  // the block's layers, in model order
  std::vector<Part> parts;    // one per block parameter
};

// The features of `samples` (rows in that order), where GopFastPathApplies:
// objective.micro_batch_size() samples per forward pass, then one backward
// pass of the sum of their losses (each sample's loss that of its one-sample
// batch, as in GopGramMatrices) to the block's layer outputs. Cancelled
// (polled before every micro-batch). Thread-compatible.
absl::StatusOr<LinearGopFeatures> ComputeLinearGopFeatures(
    Objective& objective, const std::vector<int64_t>& samples,
    const Progress& progress);

// GopGramMatrices's whole and groups from the features (`gradients`
// undefined); `groups` as GopGroups gives them, or empty. InvalidArgument
// when a Gram entry is not finite.
absl::StatusOr<GopGrams> LinearGopGramMatrices(
    const LinearGopFeatures& features, const std::vector<GopGroup>& groups);

// G^T w [M, k] for w [N, k] float64 (G the per-sample gradients as rows):
// per layer and column w_j, a Linear's (B^T diag(w_j) A, B^T w_j) over the
// tokens' rows, an Embedding's B^T diag(w_j) scattered into the ids' rows,
// the formed per-sample gradients' gradients^T w_j.
torch::Tensor LinearGopGradientTransposeTimes(const LinearGopFeatures& features,
                                              const torch::Tensor& w);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_GOP_FAST_PATH_H_

// The GOP's fast path (docs/adr/0013) for blocks of Linear layers' weights and
// biases (Model::LinearLayers, the zoo MLP): the Gram matrices of the
// per-sample gradients from each layer's inputs a_i and output gradients
// b_i = dl_i/dy_i, as g_i = (b_i a_i^T, b_i) gives
//   <g_i, g_j> = (a_i . a_j) (b_i . b_j)  (weight)  +  b_i . b_j  (bias),
// so no per-sample gradient is formed: one forward and one backward pass per
// micro-batch of the samples. It fills the same GopGrams as GopGramMatrices
// (gop.h), equal to them to rounding. Internal to core (includes torch).
#ifndef CURVD_CORE_MEASUREMENTS_GOP_FAST_PATH_H_
#define CURVD_CORE_MEASUREMENTS_GOP_FAST_PATH_H_

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/measurements/gop.h"
#include "core/objective/objective.h"

namespace curvd::core {

// OK when the fast path can measure `objective`'s block over `num_samples`
// samples: every block parameter is the weight or the bias of one of the
// model's LinearLayers(), and the features it holds, num_samples x (d_in +
// d_out) float64 per layer of the block, fit max_gradient_floats. Else
// InvalidArgument saying which condition fails ("gop.path = fast: ...").
// From names and shapes alone: no forward pass.
absl::Status GopFastPathApplies(Objective& objective, int64_t num_samples,
                                int64_t max_gradient_floats);

// The per-sample inputs and output gradients of the block's Linear layers.
struct LinearGopFeatures {
  struct Layer {
    torch::Tensor inputs;            // A [N, d_in], float64, rows a_i
    torch::Tensor output_gradients;  // B [N, d_out], float64, rows b_i
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
// per layer (B^T diag(w_j) A, B^T w_j) for each column w_j, a matmul.
torch::Tensor LinearGopGradientTransposeTimes(const LinearGopFeatures& features,
                                              const torch::Tensor& w);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_GOP_FAST_PATH_H_

// Gradient outer products (GopOptions in core/api/gop_types.h): the exact
// non-zero spectrum of (1/N) sum_i g_i g_i^T (centred, or of g-bar g-bar^T)
// over the block of an Objective, through the N x N Gram matrix of the
// per-sample gradients (docs/adr/0013). Internal to core (includes torch).
#ifndef CURVD_CORE_MEASUREMENTS_GOP_H_
#define CURVD_CORE_MEASUREMENTS_GOP_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/gop_types.h"
#include "core/objective/objective.h"

namespace curvd::core {

// A parameter group of per_layer: the block's parameters of one module,
// contiguous in the flat vector.
struct GopGroup {
  std::string name;    // the module: a parameter name up to its last '.'
  int64_t offset = 0;  // of its first entry in the flat vector
  int64_t size = 0;    // its entries
};

// The block's parameter names in block order (every parameter's,
// Model::ParameterNames(), when the block is every parameter).
std::vector<std::string> GopBlockNames(Objective& objective);

// Before step `done` of `total` steps of `what` ("micro-batch"):
// Cancelled naming them when progress.cancelled says so, else reports the
// fraction done to progress.report (each hook only when set).
absl::Status GopProgressStep(const Progress& progress, int64_t done,
                             int64_t total, const char* what);

// The block's parameters grouped by module: consecutive parameters whose
// names (Model::ParameterNames()) agree up to their last '.' form one group
// ("fc0.weight", "fc0.bias" -> "fc0"); a name without '.' is a group of its
// own. So a group's name + "." is the ParameterBlock prefix that selects it.
// In model order; the sizes sum to objective.num_parameters().
std::vector<GopGroup> GopGroups(Objective& objective);

// The N sample indices measured, ascending: 0..shard_samples-1 when
// options.num_samples is 0, else num_samples of them drawn without
// replacement by a generator seeded with options.seed. Deterministic in
// (num_samples, seed, shard_samples). Requires 0 <= num_samples <=
// shard_samples (ValidateGopOptions).
std::vector<int64_t> GopSampleIndices(const GopOptions& options,
                                      int64_t shard_samples);

// ValidateGopFields (core/api/measurement.h), then the sizes:
// InvalidArgument naming the field (gop.variant, gop.num_samples, gop.top_k,
// gop.rank_rtol, a cap that is not >= 1) or the cap exceeded and by how much
// (gop.max_samples, gop.max_gram_floats, gop.max_eigenvector_floats), and
// with path kFast GopFastPathApplies (gop_fast_path.h), from the options and
// the objective's names and sizes alone: no gradient is computed.
absl::Status ValidateGopOptions(const GopOptions& options,
                                Objective& objective);

// The Gram matrices of the per-sample gradients g_i of `samples` (rows of
// G, N x M): whole = G G^T and groups[j] = G_j G_j^T for G_j the columns of
// `groups`[j], unnormalised, float64 on the parameters' device; their sum
// over a partition of the columns is `whole`. gradients is G itself (float64)
// when N * M <= max_gradient_floats, else undefined: of the R = max(2,
// max_gradient_floats / M) rows that fit, G is held in resident chunks of
// a = R - max(1, R / 8) rows, each multiplied with every earlier row, those
// recomputed max(1, R / 8) at a time, so GopGenericGradientCount per-sample
// gradients are computed in all.
struct GopGrams {
  torch::Tensor whole;
  std::vector<torch::Tensor> groups;
  torch::Tensor gradients;
};

// The per-sample gradients GopGramMatrices computes for N = n samples of M =
// m parameters: N when N * M <= max_gradient_floats, else N + a K (K - 1) / 2
// (about N + N^2 / (2 a)), a the rows of its resident chunks and K = ceil(N /
// a) their number. n, m, max_gradient_floats >= 1.
int64_t GopGenericGradientCount(int64_t n, int64_t m,
                                int64_t max_gradient_floats);

// Each g_i is the gradient of sample i's loss (the objective's loss on the
// one-sample batch), by one forward and one backward pass of that sample
// alone, its forward randomness seeded with Objective::ForwardSeed(
// objective.forward_seed(), i). Cancelled (polled before every sample) and
// InvalidArgument when a gradient is not finite. Thread-compatible.
absl::StatusOr<GopGrams> GopGramMatrices(Objective& objective,
                                         const std::vector<int64_t>& samples,
                                         const std::vector<GopGroup>& groups,
                                         int64_t max_gradient_floats,
                                         const Progress& progress);

// The GOP of `objective`'s block: ValidateGopOptions, then for the
// per-sample variants the Gram matrices over GopSampleIndices, by the fast
// path (gop_fast_path.h) when options.path is kFast, or kAuto and
// GopFastPathApplies, else by GopGramMatrices (result.path says which), the
// matrix
// K / N (centred: H K H / N, H = I - 1 1^T / N) eigendecomposed in float64
// by torch.linalg.eigh, and the metrics from its eigenvalues; with
// eigenvectors, v = G^T H u / sqrt(N lambda) from the fast path's features,
// the retained G or one more pass over the samples. kMeanGradient in closed
// form from g-bar (the gradient of the N samples' mean loss, one backward pass
// per micro-batch of them): eigenvalue ||g-bar||^2, eigenvector g-bar /
// ||g-bar||. With options.hessian_overlap_k = k >= 1, the min(k, rank) top
// eigenvectors (computed as above also without `eigenvectors`) are compared
// with the Hessian's top k by MeasureGopHessianOverlap
// (gop_hessian_overlap.h) into result.hessian_overlap, after the per-sample
// state is freed. Cancelled and InvalidArgument as GopGramMatrices (also a
// non-finite g-bar) and Lanczos. Thread-compatible.
absl::StatusOr<GopResult> MeasureGop(Objective& objective,
                                     const GopOptions& options,
                                     const Progress& progress);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_GOP_H_

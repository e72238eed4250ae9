// Options and results of the gradient-outer-product (GOP) measurement of
// issue 14 (core/measurements/gop.h; docs/adr/0013). Plain structs, no torch,
// defaults stated. The matrix measured is M x M (M the block's parameters);
// its non-zero spectrum is computed exactly from the N x N Gram matrix of the
// N per-sample gradients, never from the M x M matrix itself.
#ifndef CURVD_CORE_API_GOP_TYPES_H_
#define CURVD_CORE_API_GOP_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/api/method_types.h"

namespace curvd::core {

// Which outer product: g_i the gradient of sample i's loss, g-bar their mean
// over the N samples measured.
enum class GopVariant {
  // (1/N) sum_i g_i g_i^T, uncentred: the empirical Fisher.
  kEmpiricalFisher,
  // (1/N) sum_i (g_i - g-bar)(g_i - g-bar)^T: the gradient-noise covariance.
  kGradientCovariance,
  // g-bar g-bar^T: rank one, in closed form (the older framework's matrix).
  kMeanGradient,
};

// How the per-sample Gram matrices are computed (docs/adr/0013).
enum class GopPath {
  // The fast path where the block allows it (GopPathApplies in
  // core/measurements/gop_fast_path.h), else the generic one.
  kAuto,
  // One forward and backward pass per sample: any model.
  kGeneric,
  // Gram blocks from the layers' inputs and output gradients, no per-sample
  // gradient of a Linear or Embedding layer formed: blocks of the parameters
  // of a model's Model::RecordedLayers() (the zoo MLP; TorchScript Linear,
  // Embedding, LayerNorm, Conv2d and added parameters in eval mode; not
  // BatchNorm). Refused (InvalidArgument saying why) for another block, or
  // for kMeanGradient, which forms no Gram matrix.
  kFast,
};

struct GopOptions {
  GopVariant variant = GopVariant::kEmpiricalFisher;
  // N: 0 = every sample of the shard; else a subset of that size drawn
  // without replacement by `seed` (the same seed and shard, the same subset),
  // taken in shard order. InvalidArgument above the shard's size.
  int64_t num_samples = 0;
  uint64_t seed = 0;
  // Also measure each parameter group (one per module: the parameter names
  // up to their last '.', GopGroups in gop.h) with the same metrics.
  bool per_layer = false;
  // The top_k largest eigenvalues (and their explained variance), >= 0;
  // min(top_k, N) of them, as N samples have at most N.
  int top_k = 10;
  // Also the top-k eigenvectors of the whole-model matrix in parameter
  // space, v = G^T u / sqrt(N lambda) (G the per-sample gradients as rows, u
  // the Gram eigenvector), for those of the top_k with lambda > the rank
  // tolerance.
  bool eigenvectors = false;
  // The rank tolerance relative to lambda_max: an eigenvalue counts as
  // non-zero when lambda > rank_rtol * lambda_max. Unset: rank_rtol = N *
  // eps_float64, numpy.linalg.matrix_rank's rule for the N x N Gram matrix.
  // Set: finite and in (0, 1).
  std::optional<double> rank_rtol;
  GopPath path = GopPath::kAuto;
  // k of the overlap of the GOP's top-k eigenspace with the Hessian's
  // (GopHessianOverlap below): 0 = off; else in [1, limits::kMaxEigenpairs].
  // The Hessian is the objective's (its block's, whatever the request's
  // operator), its top k eigenvectors from Lanczos with the sharpness kind's
  // defaults; the GOP's are computed for it also without `eigenvectors`.
  int hessian_overlap_k = 0;
  // Caps, checked before any work (InvalidArgument naming the cap and by how
  // much a request exceeds it).
  int64_t max_samples = 8192;  // N
  // (groups measured + 1) * N^2: the Gram matrices held in float64 (2 GiB),
  // per-sample variants only.
  int64_t max_gram_floats = int64_t{1} << 28;
  // The per-sample gradients held at once (float64 elements, 1 GiB): all N
  // rows when N * M fits, else two chunks of rows (at least one row each).
  // The fast path holds N x (d_in + d_out) per Linear layer of the block
  // and N x (its parameters) per LayerNorm or Conv2d layer instead, and is
  // not taken (kAuto) or refused (kFast) when that exceeds this cap.
  int64_t max_gradient_floats = int64_t{1} << 27;
  // k * M for the eigenvectors asked for, k = top_k (at most 1 for
  // kMeanGradient), float64 (512 MiB).
  int64_t max_eigenvector_floats = int64_t{1} << 26;
};

// Metrics of one GOP matrix C (M x M) from its eigenvalues lambda, the
// non-zero ones taken from the N x N Gram matrix; the other M - rank are 0.
// "Non-zero" means lambda > rank_tolerance. Fields marked (non-zero) are over
// those `rank` eigenvalues, (all M) over all M of C's eigenvalues.
struct GopMetrics {
  int64_t size = 0;  // M, the parameters of the matrix
  // The non-zero spectrum, descending (rank entries).
  std::vector<double> eigenvalues;
  // The top_k largest of the N Gram eigenvalues, descending (fewer when N <
  // top_k); they may include numerical zeros below rank_tolerance.
  std::vector<double> top_eigenvalues;
  // cumulative sum of top_eigenvalues / trace (entry j: the first j + 1).
  std::vector<double> explained_variance;
  double trace = 0;           // tr C = mean_i ||g_i||^2 (centred as asked)
  double frobenius_norm = 0;  // ||C||_F, from the Gram matrix's entries
  double spectral_norm = 0;   // lambda_max
  double nuclear_norm = 0;    // sum |lambda| over all N Gram eigenvalues
  int64_t rank = 0;           // numerical rank: lambda > rank_tolerance
  double rank_tolerance = 0;  // rtol * lambda_max
  std::string rank_rule;      // the rule with its numbers
  double effective_rank = 0;  // exp(-sum p log p), p = lambda / sum (non-zero)
  double stable_rank = 0;     // ||C||_F^2 / ||C||_2^2 (0 when C = 0)
  // lambda_max / lambda_min (non-zero); NaN when rank is 0.
  double condition_number = 0;
  double log_pseudo_determinant = 0;  // sum log lambda (non-zero); 0 if none
  double max_nonzero = 0;   // (non-zero); 0 when rank is 0, as the next three
  double min_nonzero = 0;   // (non-zero)
  double mean_nonzero = 0;  // (non-zero)
  double std_nonzero = 0;   // population standard deviation (non-zero)
  double mean_all = 0;      // trace / M (all M)
  double std_all = 0;       // population standard deviation (all M)
};

// One parameter group of per_layer: a module's parameters.
struct GopLayerResult {
  std::string name;  // the group (GopGroups in gop.h: "fc0", "layers.1")
  int64_t size = 0;  // its parameters
  GopMetrics metrics;
  double trace_share = 0;  // its trace / the whole model's (0 when that is 0)
};

// Per-sample gradient norms ||g_i|| (uncentred) over the N samples.
struct GradientNormDistribution {
  double mean = 0;
  // quantiles[j] at quantile_levels[j], linear interpolation between order
  // statistics (numpy's default).
  std::vector<double> quantile_levels = {0, 0.1, 0.5, 0.9, 1};
  std::vector<double> quantiles;
};

// The overlap of the GOP's top eigenspace (U, orthonormal columns u_1..u_a,
// a = min(k, rank)) with the Hessian's (V, the b = min(k, Lanczos steps) top
// Ritz vectors), both in the block's M parameters.
struct GopHessianOverlap {
  int k = 0;                 // GopOptions::hessian_overlap_k
  int64_t gop_dimension = 0;      // a
  int64_t hessian_dimension = 0;  // b
  // ||U^T V||_F^2 / min(a, b): 1 when the smaller subspace lies in the other
  // (the same subspace when a = b), 0 when they are orthogonal; NaN when a or
  // b is 0.
  double overlap = 0;
  // The overlap's expectation for independent uniformly random subspaces of
  // those dimensions, max(a, b) / M.
  double random_baseline = 0;
  // The cosines of the principal angles: the singular values of U^T V,
  // descending, min(a, b) of them.
  std::vector<double> cosines;
  // The Hessian's top b eigenvalues used (descending), their Ritz residuals
  // and convergence, and the Lanczos run's steps and overall convergence.
  std::vector<Eigenpair> hessian_eigenpairs;
  int lanczos_iterations = 0;
  bool lanczos_converged = false;
};

struct GopResult {
  GopVariant variant = GopVariant::kEmpiricalFisher;
  int64_t num_samples = 0;     // N
  int64_t num_parameters = 0;  // M
  // How the Gram matrices were computed: "fast" or "generic" (always
  // "generic" for kMeanGradient, which forms none).
  std::string path;
  GopMetrics metrics;  // the whole model (the objective's block)
  std::vector<GopLayerResult> layers;  // per_layer only, in model order
  // The per-sample variants only (kMeanGradient computes no per-sample
  // gradient: quantiles empty).
  GradientNormDistribution gradient_norms;
  // ||g-bar||^2 / tr(Sigma), kGradientCovariance only (+inf when tr(Sigma)
  // = 0 and g-bar != 0).
  std::optional<double> signal_to_noise;
  // With options.eigenvectors: num_eigenvectors unit vectors of M entries,
  // row-major [num_eigenvectors x M], in the order of
  // metrics.top_eigenvalues.
  int64_t num_eigenvectors = 0;
  std::vector<double> eigenvectors;
  // Set when options.hessian_overlap_k >= 1; the whole model only.
  std::optional<GopHessianOverlap> hessian_overlap;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_API_GOP_TYPES_H_

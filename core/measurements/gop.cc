#include "core/measurements/gop.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/api/measurement.h"
#include "core/measurements/gop_fast_path.h"
#include "core/measurements/gop_hessian_overlap.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {
namespace {

// GopResult.path.
constexpr char kGenericPath[] = "generic";
constexpr char kFastPath[] = "fast";

std::string GroupName(const std::string& parameter) {
  const size_t dot = parameter.rfind('.');
  return dot == std::string::npos ? parameter : parameter.substr(0, dot);
}

// Writes the flattened per-parameter tensors into `row` [M]; an undefined
// one (a parameter the loss does not depend on) stays zero.
void WriteFlat(const std::vector<torch::Tensor>& parts,
               const std::vector<int64_t>& numels, torch::Tensor row) {
  int64_t offset = 0;
  for (size_t p = 0; p < parts.size(); ++p) {
    if (parts[p].defined()) {
      row.narrow(0, offset, numels[p]).copy_(parts[p].reshape({-1}));
    }
    offset += numels[p];
  }
}

void SeedForward(Objective& objective, int64_t stream) {
  at::Generator generator =
      at::globalContext().defaultGenerator(objective.vector_options().device());
  const std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_current_seed(
      Objective::ForwardSeed(objective.forward_seed(), stream));
}

// Rows [start, start + count) of G: the per-sample gradients of
// samples[start..], float64 [count, M] on the parameters' device.
absl::StatusOr<torch::Tensor> GradientRows(Objective& objective,
                                           const std::vector<int64_t>& samples,
                                           int64_t start, int64_t count,
                                           const Progress& progress) {
  torch::Tensor rows =
      torch::zeros({count, objective.num_parameters()},
                   objective.vector_options().dtype(torch::kFloat64));
  const int64_t total = static_cast<int64_t>(samples.size());
  for (int64_t r = 0; r < count; ++r) {
    CURVD_RETURN_IF_ERROR(
        GopProgressStep(progress, start + r, total, "per-sample gradient"));
    const int64_t sample = samples[start + r];
    SeedForward(objective, sample);
    const torch::Tensor loss = MeanLoss(
        objective.model()->Forward(objective.inputs().narrow(0, sample, 1)),
        objective.targets().narrow(0, sample, 1), objective.loss());
    WriteFlat(torch::autograd::grad({loss}, objective.block_parameters(), {},
                                    /*retain_graph=*/false,
                                    /*create_graph=*/false,
                                    /*allow_unused=*/true),
              objective.block_numels(), rows[r]);
  }
  return rows;
}

// gram[ia.., ib..] = block and its transpose at [ib.., ia..].
void SetBlockPair(torch::Tensor& gram, int64_t ia, int64_t ib,
                  const torch::Tensor& block) {
  gram.narrow(0, ia, block.size(0)).narrow(1, ib, block.size(1)).copy_(block);
  gram.narrow(0, ib, block.size(1))
      .narrow(1, ia, block.size(0))
      .copy_(block.t());
}

// The Gram matrix normalised as the GOP's: K / N, or H K H / N for the
// centred variant, H K H = K - row means - column means + the grand mean.
torch::Tensor GopGram(const torch::Tensor& gram, bool centred) {
  const double n = static_cast<double>(gram.size(0));
  if (!centred) return gram / n;
  const torch::Tensor row_means = gram.mean(1, true);  // = column means^T
  return (gram - row_means - row_means.t() + gram.mean()) / n;
}

// Metrics from the N eigenvalues of the normalised Gram matrix, descending,
// and C's trace and Frobenius norm measured directly.
GopMetrics SpectrumMetrics(const std::vector<double>& lambda, double trace,
                           double frobenius, int64_t size,
                           const GopOptions& options) {
  GopMetrics metrics;
  metrics.size = size;
  metrics.trace = trace;
  metrics.frobenius_norm = frobenius;
  const int64_t n = static_cast<int64_t>(lambda.size());
  const double largest = std::max(lambda.front(), 0.0);
  const double rtol = options.rank_rtol.value_or(
      static_cast<double>(n) * std::numeric_limits<double>::epsilon());
  metrics.spectral_norm = largest;
  metrics.rank_tolerance = rtol * largest;
  metrics.rank_rule =
      options.rank_rtol.has_value()
          ? absl::StrFormat(
                "lambda > rank_rtol * lambda_max = %.6g * %.17g = "
                "%.17g (rank_rtol requested)",
                rtol, largest, metrics.rank_tolerance)
          : absl::StrFormat(
                "lambda > N * eps_float64 * lambda_max = %d * "
                "%.6g * %.17g = %.17g (numpy's matrix_rank rule "
                "for the N x N Gram matrix)",
                n, std::numeric_limits<double>::epsilon(), largest,
                metrics.rank_tolerance);
  double sum = 0, squares = 0;
  for (double value : lambda) {
    metrics.nuclear_norm += std::abs(value);
    if (value <= metrics.rank_tolerance) continue;
    metrics.eigenvalues.push_back(value);
    metrics.log_pseudo_determinant += std::log(value);
    sum += value;
    squares += value * value;
  }
  metrics.rank = static_cast<int64_t>(metrics.eigenvalues.size());
  for (int64_t j = 0; j < std::min<int64_t>(options.top_k, n); ++j) {
    metrics.top_eigenvalues.push_back(lambda[j]);
    const double before = j == 0 ? 0.0 : metrics.explained_variance.back();
    metrics.explained_variance.push_back(trace > 0 ? before + lambda[j] / trace
                                                   : 0.0);
  }
  metrics.stable_rank =
      largest > 0 ? frobenius * frobenius / (largest * largest) : 0.0;
  metrics.mean_all = trace / static_cast<double>(size);
  metrics.std_all = std::sqrt(
      std::max(0.0, frobenius * frobenius / static_cast<double>(size) -
                        metrics.mean_all * metrics.mean_all));
  if (metrics.rank == 0) {
    metrics.condition_number = std::numeric_limits<double>::quiet_NaN();
    return metrics;
  }
  const double count = static_cast<double>(metrics.rank);
  metrics.max_nonzero = metrics.eigenvalues.front();
  metrics.min_nonzero = metrics.eigenvalues.back();
  metrics.condition_number = metrics.max_nonzero / metrics.min_nonzero;
  metrics.mean_nonzero = sum / count;
  metrics.std_nonzero = std::sqrt(std::max(
      0.0, squares / count - metrics.mean_nonzero * metrics.mean_nonzero));
  double entropy = 0;
  for (double value : metrics.eigenvalues) {
    const double p = value / sum;
    entropy -= p * std::log(p);
  }
  metrics.effective_rank = std::exp(entropy);
  return metrics;
}

// The metrics of the normalised Gram matrix `gop_gram` [N, N] of a matrix of
// `size` parameters; with `vectors`, also its eigenvectors as columns in
// descending order of eigenvalue.
GopMetrics GramMetrics(const torch::Tensor& gop_gram, int64_t size,
                       const GopOptions& options, torch::Tensor* vectors) {
  torch::Tensor values;
  if (vectors != nullptr) {
    auto [eigenvalues, eigenvectors] = torch::linalg_eigh(gop_gram);
    values = eigenvalues;
    *vectors = eigenvectors.flip({1});
  } else {
    values = torch::linalg_eigvalsh(gop_gram);
  }
  // One transfer for the eigenvalues, the trace and the Frobenius norm.
  const torch::Tensor host =
      torch::cat({values.flip({0}), gop_gram.trace().reshape({1}),
                  gop_gram.norm().reshape({1})})
          .to(torch::kCPU)
          .contiguous();
  const double* data = host.data_ptr<double>();
  const int64_t n = gop_gram.size(0);
  return SpectrumMetrics(std::vector<double>(data, data + n), data[n],
                         data[n + 1], size, options);
}

// Quantiles at `levels` of `values` (sorted here), linear interpolation.
GradientNormDistribution NormDistribution(std::vector<double> values) {
  GradientNormDistribution distribution;
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (double value : values) sum += value;
  distribution.mean = sum / static_cast<double>(values.size());
  for (double level : distribution.quantile_levels) {
    const double position = level * static_cast<double>(values.size() - 1);
    const size_t below = static_cast<size_t>(std::floor(position));
    const size_t above = std::min(below + 1, values.size() - 1);
    const double fraction = position - static_cast<double>(below);
    distribution.quantiles.push_back(
        values[below] + fraction * (values[above] - values[below]));
  }
  return distribution;
}

// G^T w for w [N, k] on the generic path: from the retained G, else one more
// pass over the samples, max_gradient_floats / M rows at a time. [M, k].
absl::StatusOr<torch::Tensor> GradientTransposeTimes(
    Objective& objective, const std::vector<int64_t>& samples,
    const GopGrams& grams, const torch::Tensor& w, int64_t max_gradient_floats,
    const Progress& progress) {
  if (grams.gradients.defined()) return grams.gradients.t().mm(w);
  const int64_t n = static_cast<int64_t>(samples.size());
  const int64_t chunk =
      std::max<int64_t>(1, max_gradient_floats / objective.num_parameters());
  torch::Tensor product =
      torch::zeros({objective.num_parameters(), w.size(1)}, w.options());
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t count = std::min(chunk, n - start);
    CURVD_ASSIGN_OR_RETURN(
        const torch::Tensor rows,
        GradientRows(objective, samples, start, count, progress));
    product.addmm_(rows.t(), w.narrow(0, start, count));
  }
  return product;
}

// G^T w [M, k] for w [N, k], by the path that made the Gram matrices.
using TransposeTimes =
    absl::FunctionRef<absl::StatusOr<torch::Tensor>(const torch::Tensor&)>;

// The unit eigenvectors v = G^T H u / sqrt(N lambda) of the `count` largest
// eigenvalues (all above the rank tolerance, metrics.eigenvalues), u the
// first `count` columns of `u`: rows [count, M], float64 on the device.
absl::StatusOr<torch::Tensor> GopEigenvectors(const torch::Tensor& u,
                                              const GopMetrics& metrics,
                                              int64_t count, bool centred,
                                              TransposeTimes transpose_times) {
  const double n = static_cast<double>(u.size(0));
  torch::Tensor w = u.narrow(1, 0, count);
  if (centred) {
    const int64_t sample_dim = 0;
    w = w - w.mean(sample_dim, true);
  }
  const torch::Tensor scale =
      torch::tensor(std::vector<double>(metrics.eigenvalues.begin(),
                                        metrics.eigenvalues.begin() + count),
                    torch::kFloat64)
          .mul(n)
          .rsqrt()
          .to(w.device());
  CURVD_ASSIGN_OR_RETURN(const torch::Tensor vectors, transpose_times(w * scale));
  return vectors.t().contiguous();
}

// result's eigenvectors: the first `count` rows of `rows` [>= count, M].
void SetEigenvectors(const torch::Tensor& rows, int64_t count,
                     GopResult* result) {
  const torch::Tensor host =
      rows.narrow(0, 0, count).to(torch::kCPU).contiguous().reshape({-1});
  result->num_eigenvectors = count;
  result->eigenvectors.assign(host.data_ptr<double>(),
                              host.data_ptr<double>() + host.numel());
}

// With options.hessian_overlap_k, result's hessian_overlap from the GOP's
// top eigenvectors `rows` [min(k, rank), M] (MeasureGopHessianOverlap).
absl::Status AddHessianOverlap(Objective& objective, const GopOptions& options,
                               const torch::Tensor& rows,
                               const Progress& progress, GopResult* result) {
  if (options.hessian_overlap_k == 0) return absl::OkStatus();
  CURVD_ASSIGN_OR_RETURN(
      result->hessian_overlap,
      MeasureGopHessianOverlap(objective, options.hessian_overlap_k,
                               options.seed, rows, progress));
  return absl::OkStatus();
}

// The mean gradient of `samples`' losses, g-bar, float64 [M]: the mean loss
// of each micro-batch of them weighted by its share, one backward each.
absl::StatusOr<torch::Tensor> MeanGradient(Objective& objective,
                                           const std::vector<int64_t>& samples,
                                           const Progress& progress) {
  const int64_t n = static_cast<int64_t>(samples.size());
  const torch::Tensor indices =
      torch::tensor(samples, torch::kInt64).to(objective.inputs().device());
  torch::Tensor mean =
      torch::zeros({objective.num_parameters()},
                   objective.vector_options().dtype(torch::kFloat64));
  torch::Tensor part = torch::zeros_like(mean);
  const int64_t batch = objective.micro_batch_size();
  for (int64_t start = 0, index = 0; start < n; start += batch, ++index) {
    CURVD_RETURN_IF_ERROR(GopProgressStep(progress, start, n, "mean gradient"));
    const int64_t count = std::min(batch, n - start);
    const torch::Tensor chosen = indices.narrow(0, start, count);
    SeedForward(objective, index);
    const torch::Tensor loss = MeanLoss(
        objective.model()->Forward(objective.inputs().index_select(0, chosen)),
        objective.targets().index_select(0, chosen), objective.loss());
    part.zero_();
    WriteFlat(torch::autograd::grad({loss}, objective.block_parameters(), {},
                                    false, false, /*allow_unused=*/true),
              objective.block_numels(), part);
    mean.add_(part, static_cast<double>(count) / static_cast<double>(n));
  }
  if (!torch::isfinite(mean).all().item<bool>()) {
    return absl::InvalidArgumentError("gop: the mean gradient is not finite");
  }
  return mean;
}

// kMeanGradient: C = g-bar g-bar^T, whose N "Gram eigenvalues" are
// ||g-bar||^2 and N - 1 zeros.
absl::Status MeasureMeanGradient(Objective& objective,
                                 const std::vector<int64_t>& samples,
                                 const std::vector<GopGroup>& groups,
                                 const GopOptions& options,
                                 const Progress& progress, GopResult* result) {
  CURVD_ASSIGN_OR_RETURN(const torch::Tensor mean,
                         MeanGradient(objective, samples, progress));
  const torch::Tensor host = mean.to(torch::kCPU).contiguous();
  const auto metrics_of = [&](int64_t offset, int64_t size) {
    const double norm_squared =
        host.narrow(0, offset, size).square().sum().item<double>();
    std::vector<double> lambda(samples.size(), 0.0);
    lambda[0] = norm_squared;
    return SpectrumMetrics(lambda, norm_squared, norm_squared, size, options);
  };
  result->metrics = metrics_of(0, objective.num_parameters());
  for (const GopGroup& group : groups) {
    GopLayerResult layer{group.name, group.size,
                         metrics_of(group.offset, group.size)};
    layer.trace_share = result->metrics.trace > 0
                            ? layer.metrics.trace / result->metrics.trace
                            : 0.0;
    result->layers.push_back(std::move(layer));
  }
  // The one eigenvector, g-bar / ||g-bar||, when g-bar != 0.
  const torch::Tensor rows =
      result->metrics.rank > 0
          ? (mean / std::sqrt(result->metrics.trace)).unsqueeze(0)
          : mean.new_zeros({0, objective.num_parameters()});
  if (options.eigenvectors && options.top_k > 0 && result->metrics.rank > 0) {
    SetEigenvectors(rows, 1, result);
  }
  return AddHessianOverlap(objective, options, rows, progress, result);
}

// "by how much" in a cap's message.
absl::Status CapExceeded(const std::string& what, int64_t value,
                         const char* cap, int64_t limit) {
  return absl::InvalidArgumentError(
      absl::StrCat("gop: ", what, " = ", value, " exceeds the cap gop.", cap,
                   " = ", limit, " by ", value - limit));
}

// GopGramMatrices's rows of G held at once: all N in one resident chunk when
// N * M fits the cap, else the R rows that fit split into a large resident
// chunk and a small streamed one. Each resident chunk recomputes every
// earlier row, so the recomputation falls with the resident chunk's size.
struct GradientChunks {
  int64_t resident;
  int64_t streamed;  // 0 when all N are resident
};
GradientChunks StreamedChunks(int64_t n, int64_t m,
                              int64_t max_gradient_floats) {
  if (n * m <= max_gradient_floats) return {n, 0};
  const int64_t rows = std::max<int64_t>(2, max_gradient_floats / m);
  const int64_t streamed = std::max<int64_t>(1, rows / 8);
  return {rows - streamed, streamed};
}

// Whether MeasureGop takes the fast path (ValidateGopOptions has refused a
// kFast it cannot take).
bool TakesFastPath(Objective& objective, const GopOptions& options,
                   int64_t num_samples) {
  switch (options.path) {
    case GopPath::kFast:
      return true;
    case GopPath::kGeneric:
      return false;
    case GopPath::kAuto:
      break;
  }
  return options.variant != GopVariant::kMeanGradient &&
         GopFastPathApplies(objective, num_samples, options.max_gradient_floats)
             .ok();
}

}  // namespace

std::vector<std::string> GopBlockNames(Objective& objective) {
  return objective.block_parameter_names().empty()
             ? objective.model()->ParameterNames()
             : objective.block_parameter_names();
}

absl::Status GopProgressStep(const Progress& progress, int64_t done,
                             int64_t total, const char* what) {
  if (progress.cancelled && progress.cancelled()) {
    return absl::CancelledError(
        absl::StrFormat("gop cancelled at %s %d/%d", what, done, total));
  }
  if (progress.report) {
    progress.report(static_cast<double>(done) / total,
                    absl::StrFormat("gop %s %d/%d", what, done + 1, total));
  }
  return absl::OkStatus();
}

std::vector<GopGroup> GopGroups(Objective& objective) {
  const std::vector<std::string> names = GopBlockNames(objective);
  const std::vector<int64_t>& numels = objective.block_numels();
  std::vector<GopGroup> groups;
  int64_t offset = 0;
  for (size_t p = 0; p < numels.size(); ++p) {
    const std::string name = GroupName(names[p]);
    if (groups.empty() || groups.back().name != name) {
      groups.push_back(GopGroup{name, offset, 0});
    }
    groups.back().size += numels[p];
    offset += numels[p];
  }
  return groups;
}

std::vector<int64_t> GopSampleIndices(const GopOptions& options,
                                      int64_t shard_samples) {
  std::vector<int64_t> samples;
  if (options.num_samples == 0) {
    for (int64_t i = 0; i < shard_samples; ++i) samples.push_back(i);
    return samples;
  }
  at::Generator generator = SeededGenerator(options.seed);
  const torch::Tensor chosen = std::get<0>(
      torch::sort(torch::randperm(shard_samples, generator, torch::kInt64)
                      .narrow(0, 0, options.num_samples)));
  samples.assign(chosen.data_ptr<int64_t>(),
                 chosen.data_ptr<int64_t>() + options.num_samples);
  return samples;
}

absl::Status ValidateGopOptions(const GopOptions& options,
                                Objective& objective) {
  CURVD_RETURN_IF_ERROR(ValidateGopFields(options, "gop"));
  const int64_t shard = objective.num_samples();
  if (options.num_samples > shard) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gop.num_samples must be in [0, ", shard, "] (0 = the whole shard of ",
        shard, " samples), got ", options.num_samples));
  }
  const int64_t n = options.num_samples == 0 ? shard : options.num_samples;
  if (n > options.max_samples) {
    return CapExceeded("N", n, "max_samples", options.max_samples);
  }
  if (options.variant != GopVariant::kMeanGradient) {
    const int64_t matrices =
        1 + (options.per_layer
                 ? static_cast<int64_t>(GopGroups(objective).size())
                 : 0);
    if (matrices * n * n > options.max_gram_floats) {
      return CapExceeded(absl::StrCat("the Gram matrices' floats (", matrices,
                                      " x N^2, N = ", n, ")"),
                         matrices * n * n, "max_gram_floats",
                         options.max_gram_floats);
    }
  }
  if (options.eigenvectors) {
    // The mean gradient's matrix has one eigenvector.
    const int64_t k = std::min<int64_t>(
        options.top_k, options.variant == GopVariant::kMeanGradient ? 1 : n);
    const int64_t floats = k * objective.num_parameters();
    if (floats > options.max_eigenvector_floats) {
      return CapExceeded(absl::StrCat("the eigenvectors' floats (", k, " x M ",
                                      objective.num_parameters(), ")"),
                         floats, "max_eigenvector_floats",
                         options.max_eigenvector_floats);
    }
  }
  if (options.path == GopPath::kFast) {
    CURVD_RETURN_IF_ERROR(
        GopFastPathApplies(objective, n, options.max_gradient_floats));
  }
  return absl::OkStatus();
}

int64_t GopGenericGradientCount(int64_t n, int64_t m,
                                int64_t max_gradient_floats) {
  const int64_t resident = StreamedChunks(n, m, max_gradient_floats).resident;
  const int64_t k = (n + resident - 1) / resident;
  return n + resident * k * (k - 1) / 2;
}

absl::StatusOr<GopGrams> GopGramMatrices(Objective& objective,
                                         const std::vector<int64_t>& samples,
                                         const std::vector<GopGroup>& groups,
                                         int64_t max_gradient_floats,
                                         const Progress& progress) {
  const int64_t n = static_cast<int64_t>(samples.size());
  const int64_t m = objective.num_parameters();
  const torch::TensorOptions options =
      objective.vector_options().dtype(torch::kFloat64);
  GopGrams grams;
  grams.whole = torch::zeros({n, n}, options);
  for (size_t g = 0; g < groups.size(); ++g) {
    grams.groups.push_back(torch::zeros({n, n}, options));
  }
  const bool retain = n * m <= max_gradient_floats;
  const GradientChunks chunks = StreamedChunks(n, m, max_gradient_floats);
  const int64_t chunk = chunks.resident;
  const int64_t streamed = chunks.streamed;
  const auto add = [&](const torch::Tensor& a, int64_t ia,
                       const torch::Tensor& b, int64_t ib) {
    SetBlockPair(grams.whole, ia, ib, a.mm(b.t()));
    for (size_t g = 0; g < groups.size(); ++g) {
      SetBlockPair(grams.groups[g], ia, ib,
                   a.narrow(1, groups[g].offset, groups[g].size)
                       .mm(b.narrow(1, groups[g].offset, groups[g].size).t()));
    }
  };
  for (int64_t ia = 0; ia < n; ia += chunk) {
    CURVD_ASSIGN_OR_RETURN(const torch::Tensor a,
                           GradientRows(objective, samples, ia,
                                        std::min(chunk, n - ia), progress));
    for (int64_t ib = 0; ib < ia; ib += streamed) {
      CURVD_ASSIGN_OR_RETURN(
          const torch::Tensor b,
          GradientRows(objective, samples, ib, std::min(streamed, ia - ib),
                       Progress{nullptr, progress.cancelled}));
      add(a, ia, b, ib);
    }
    add(a, ia, a, ia);
    if (retain) grams.gradients = a;
  }
  if (!torch::isfinite(grams.whole).all().item<bool>()) {
    return absl::InvalidArgumentError(
        "gop: a per-sample gradient is not finite");
  }
  return grams;
}

absl::StatusOr<GopResult> MeasureGop(Objective& objective,
                                     const GopOptions& options,
                                     const Progress& progress) {
  CURVD_RETURN_IF_ERROR(ValidateGopOptions(options, objective));
  const std::vector<GopGroup> groups =
      options.per_layer ? GopGroups(objective) : std::vector<GopGroup>();
  const std::vector<int64_t> samples =
      GopSampleIndices(options, objective.num_samples());
  GopResult result;
  result.variant = options.variant;
  result.num_samples = static_cast<int64_t>(samples.size());
  result.num_parameters = objective.num_parameters();
  result.path = kGenericPath;
  if (options.variant == GopVariant::kMeanGradient) {
    CURVD_RETURN_IF_ERROR(MeasureMeanGradient(objective, samples, groups,
                                              options, progress, &result));
    return result;
  }
  GopGrams grams;
  std::optional<LinearGopFeatures> features;
  if (TakesFastPath(objective, options, result.num_samples)) {
    result.path = kFastPath;
    CURVD_ASSIGN_OR_RETURN(
        features, ComputeLinearGopFeatures(objective, samples, progress));
    CURVD_ASSIGN_OR_RETURN(grams, LinearGopGramMatrices(*features, groups));
  } else {
    CURVD_ASSIGN_OR_RETURN(
        grams, GopGramMatrices(objective, samples, groups,
                               options.max_gradient_floats, progress));
  }
  const bool centred = options.variant == GopVariant::kGradientCovariance;
  // The GOP's eigenvectors shown (eigenvectors) and compared with the
  // Hessian's (hessian_overlap_k): at most rank of them exist.
  torch::Tensor vectors;
  result.metrics = GramMetrics(
      GopGram(grams.whole, centred), result.num_parameters, options,
      options.eigenvectors || options.hessian_overlap_k > 0 ? &vectors
                                                            : nullptr);
  const int64_t shown =
      options.eigenvectors
          ? std::min<int64_t>(options.top_k, result.metrics.rank)
          : 0;
  const int64_t compared =
      std::min<int64_t>(options.hessian_overlap_k, result.metrics.rank);
  const torch::Tensor norms =
      grams.whole.diagonal().sqrt().to(torch::kCPU).contiguous();
  result.gradient_norms = NormDistribution(std::vector<double>(
      norms.data_ptr<double>(), norms.data_ptr<double>() + norms.numel()));
  if (centred) {
    const double n = static_cast<double>(result.num_samples);
    const double signal = grams.whole.sum().item<double>() / (n * n);
    result.signal_to_noise =
        result.metrics.trace > 0
            ? signal / result.metrics.trace
            : (signal > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    GopLayerResult layer{groups[g].name, groups[g].size,
                         GramMetrics(GopGram(grams.groups[g], centred),
                                     groups[g].size, options, nullptr)};
    layer.trace_share = result.metrics.trace > 0
                            ? layer.metrics.trace / result.metrics.trace
                            : 0.0;
    result.layers.push_back(std::move(layer));
  }
  torch::Tensor rows = torch::zeros(
      {0, result.num_parameters}, grams.whole.options());
  if (std::max(shown, compared) > 0) {
    const auto transpose_times =
        [&](const torch::Tensor& w) -> absl::StatusOr<torch::Tensor> {
      if (features) return LinearGopGradientTransposeTimes(*features, w);
      return GradientTransposeTimes(objective, samples, grams, w,
                                    options.max_gradient_floats, progress);
    };
    CURVD_ASSIGN_OR_RETURN(
        rows, GopEigenvectors(vectors, result.metrics,
                              std::max(shown, compared), centred,
                              transpose_times));
  }
  if (shown > 0) SetEigenvectors(rows, shown, &result);
  // The Lanczos run needs none of the per-sample state.
  grams = GopGrams();
  features.reset();
  CURVD_RETURN_IF_ERROR(AddHessianOverlap(
      objective, options, rows.narrow(0, 0, compared), progress, &result));
  return result;
}

}  // namespace curvd::core

#include "core/estimators/hutchinson.h"

#include <torch/torch.h>

#include "common/status_macros.h"
#include "core/estimators/trace_estimate.h"

namespace curvd::core {

absl::StatusOr<TraceResult> Hutchinson(const LinearOperator& op, int64_t size,
                                       const torch::TensorOptions& options,
                                       const TraceOptions& trace,
                                       const Progress& progress) {
  const BlockOperator one_at_a_time =
      [&op](const torch::Tensor& block) -> absl::StatusOr<torch::Tensor> {
    CURVD_ASSIGN_OR_RETURN(torch::Tensor product, op(block[0]));
    return product.unsqueeze(0);
  };
  return BlockHutchinson(one_at_a_time, size, options, trace, progress,
                         /*block_size=*/1);
}

absl::StatusOr<TraceResult> BlockHutchinson(
    const BlockOperator& op, int64_t size, const torch::TensorOptions& options,
    const TraceOptions& trace, const Progress& progress, int block_size,
    absl::Span<const double> known_terms) {
  ProbeTermEstimator estimator;
  estimator.name = "Hutchinson";
  estimator.term = "v^T A v";
  estimator.block_size = block_size;
  estimator.terms =
      [&op](const torch::Tensor& probes) -> absl::StatusOr<torch::Tensor> {
    CURVD_ASSIGN_OR_RETURN(const torch::Tensor products, op(probes));
    // v^T A v of every probe of the block, summed in float64.
    return (probes * products).sum({1}, /*keepdim=*/false, torch::kFloat64);
  };
  return EstimateTrace(estimator, size, options, trace, progress, known_terms);
}

}  // namespace curvd::core

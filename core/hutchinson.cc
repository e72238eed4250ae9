#include "core/hutchinson.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "core/trace_estimate.h"

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
  if (size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("Hutchinson needs a non-empty operator, got size ", size));
  }
  if (block_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("Hutchinson block size must be >= 1, got ", block_size));
  }
  at::Generator generator = SeededGenerator(trace.seed);
  RunningTraceEstimate estimate(trace);
  CURVD_ASSIGN_OR_RETURN(const int known,
                         estimate.AddKnown(known_terms, trace.max_probes));
  if (estimate.stopped()) return estimate.result();
  // The known terms are of the stream's first probes: continue after them.
  SkipProbes(known, generator);
  for (int done = known; done < trace.max_probes;) {
    if (progress.cancelled && progress.cancelled()) {
      return absl::CancelledError(
          absl::StrCat("cancelled at Hutchinson probe ", done + 1));
    }
    if (progress.report) {
      progress.report(static_cast<double>(done) / trace.max_probes,
                      absl::StrFormat("Hutchinson probe %d/%d", done + 1,
                                      trace.max_probes));
    }
    const int count = std::min(block_size, trace.max_probes - done);
    const torch::Tensor probes =
        RandomProbes(count, size, trace.distribution, generator, options);
    CURVD_ASSIGN_OR_RETURN(torch::Tensor products, op(probes));
    // v^T A v of every probe of the block, summed in float64 and read at once.
    const torch::Tensor terms =
        (probes * products).sum({1}, /*keepdim=*/false, torch::kFloat64).cpu();
    const auto term_at = terms.accessor<double, 1>();
    for (int i = 0; i < count; ++i) {
      const int probe = done + i + 1;
      const double term = term_at[i];
      if (!std::isfinite(term)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "v^T A v of Hutchinson probe ", probe, " is not finite"));
      }
      if (estimate.Add(term)) return estimate.result();
    }
    done += count;
  }
  return estimate.result();
}

}  // namespace curvd::core

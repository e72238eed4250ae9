// The running estimate of a stochastic trace: the mean of per-probe terms
// v^T f(A) v, its standard error (Welford's update), and the stopping rule of
// TraceOptions; and the one loop that draws the probes and feeds it, shared by
// Hutchinson's tr(A) and the tr(A^3) estimator. Internal to core (includes
// torch).
#ifndef CURVD_CORE_ESTIMATORS_TRACE_ESTIMATE_H_
#define CURVD_CORE_ESTIMATORS_TRACE_ESTIMATE_H_

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/api/engine.h"
#include "core/api/measurement.h"

namespace curvd::core {

class RunningTraceEstimate {
 public:
  // `trace` supplies min_probes and target_relative_error.
  explicit RunningTraceEstimate(const TraceOptions& trace) : trace_(trace) {}

  // Adds the next probe's (finite) term. Returns true when the stopping rule
  // says stop after it: at least min_probes terms and either zero variance
  // ("exact_zero_variance") or standard_error <= target * |mean|
  // ("target_relative_error"); never with a target of 0.
  bool Add(double term);

  // Adds, as Add does, the terms of the first probes of the stream that
  // another method has already evaluated on the same probes (SLQ's start
  // vectors), at most max_probes of them, stopping early where the rule says.
  // Returns how many were added: the caller skips that many probes of its
  // stream. InvalidArgument, naming the probe, for a term that is not finite.
  absl::StatusOr<int> AddKnown(absl::Span<const double> terms, int max_probes);

  // Whether Add (or AddKnown) said stop.
  bool stopped() const { return stopped_; }

  // The estimate so far; stop_reason is Add's reason once it said stop, else
  // "max_probes".
  const TraceResult& result() const { return result_; }

 private:
  const TraceOptions trace_;
  double sum_squared_deviations_ = 0;  // Welford's M2
  TraceResult result_{0, 0, 0, "max_probes"};
  bool stopped_ = false;
};

// A stochastic trace estimator: how one block of probes becomes its terms.
struct ProbeTermEstimator {
  // Heads messages: "Hutchinson", "tr(H^3)".
  std::string name;
  // What a term is, for the message about one that is not finite: "v^T A v".
  std::string term;
  // Probes per block, >= 1.
  int block_size = 1;
  // The terms v^T f(A) v of the probes, the rows of a [count, size] block, as
  // a float64 tensor [count] on the probes' device; an error ends the
  // estimate with it.
  std::function<absl::StatusOr<torch::Tensor>(const torch::Tensor& probes)>
      terms;
};

// Estimates tr(f(A)) as the mean of the terms of `estimator` over probes of
// `size` elements with `options`, drawn by RandomProbes from
// SeededGenerator(trace.seed) in blocks of estimator.block_size (at most
// max_probes in all), stopping by RunningTraceEstimate's rule checked after
// every term, so that the blocks change nothing but the number of waits: the
// host reads each block's terms in one copy. The products of a block that runs
// past the stop are computed and not counted. `known_terms`, when not empty,
// are the terms of the stream's first probes, evaluated already by another
// method on the same probes (RunningTraceEstimate::AddKnown): the stream skips
// them. Cancellation is polled and progress reported before each block:
// Cancelled if progress.cancelled() returns true. InvalidArgument for a size
// < 1, a block size < 1 or a term that is not finite (naming the probe);
// errors of estimator.terms as they are. Thread-compatible.
absl::StatusOr<TraceResult> EstimateTrace(const ProbeTermEstimator& estimator,
                                          int64_t size,
                                          const torch::TensorOptions& options,
                                          const TraceOptions& trace,
                                          const Progress& progress,
                                          absl::Span<const double> known_terms);

}  // namespace curvd::core

#endif  // CURVD_CORE_ESTIMATORS_TRACE_ESTIMATE_H_

// The running estimate of a stochastic trace: the mean of per-probe terms
// v^T f(A) v, its standard error (Welford's update), and the stopping rule of
// TraceOptions. Shared by Hutchinson's tr(A) and the tr(A^3) estimator.
#ifndef CURVD_CORE_TRACE_ESTIMATE_H_
#define CURVD_CORE_TRACE_ESTIMATE_H_

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/measurement.h"

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

}  // namespace curvd::core

#endif  // CURVD_CORE_TRACE_ESTIMATE_H_

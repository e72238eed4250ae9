// The running estimate of a stochastic trace: the mean of per-probe terms
// v^T f(A) v, its standard error (Welford's update), and the stopping rule of
// TraceOptions. Shared by Hutchinson's tr(A) and the tr(A^3) estimator.
#ifndef CURVD_CORE_TRACE_ESTIMATE_H_
#define CURVD_CORE_TRACE_ESTIMATE_H_

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

  // The estimate so far; stop_reason is Add's reason once it said stop, else
  // "max_probes".
  const TraceResult& result() const { return result_; }

 private:
  const TraceOptions trace_;
  double sum_squared_deviations_ = 0;  // Welford's M2
  TraceResult result_{0, 0, 0, "max_probes"};
};

}  // namespace curvd::core

#endif  // CURVD_CORE_TRACE_ESTIMATE_H_

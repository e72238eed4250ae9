// A core::Engine for service tests: deterministic results without torch, and
// controls to make it fail, block until released, or stop on cancellation.
#ifndef CURVD_TESTS_SERVER_FAKE_ENGINE_H_
#define CURVD_TESTS_SERVER_FAKE_ENGINE_H_

#include <cmath>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/engine.h"

namespace curvd::server::testing {

// Shared by a test and every FakeEngine it made. Thread-safe.
class FakeEngineControl {
 public:
  // Later Measure calls wait (honouring cancellation) until Release().
  void Block() {
    absl::MutexLock lock(&mu_);
    blocked_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    blocked_ = false;
  }
  // Later Measure calls return `status` (OK restores success).
  void FailWith(absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(status);
  }
  // Waits until `n` Measure calls have started; false on timeout.
  bool WaitForStarted(int n, absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return started_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }
  int started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }

 private:
  friend class FakeEngine;
  absl::Mutex mu_;
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
  int started_ ABSL_GUARDED_BY(mu_) = 0;
};

// Writes a fixed, plausible result of `kind` into `result`: sharpness top[i] =
// 10 - i (bottom[i] = -1 - i); traces 42 +- 0.5 over min_probes probes;
// Hutch++ 42 +- 0.25; tr(H^3) 1000 +- 5; a two-run density on [-1, 11];
// an exact Hessian with eigenvalues -1, 0, 10; power iteration 10 - i; a loss
// slice of 0.25 + t^2 over the requested points.
inline void FakeResult(core::MeasurementKind kind,
                       const core::MeasurementRequest& request,
                       core::MeasurementResult* result) {
  switch (kind) {
    case core::MeasurementKind::kSharpness:
      for (int i = 0; i < request.lanczos.top_k; ++i) {
        result->sharpness.top.push_back({10.0 - i, 1e-9, true});
      }
      for (int i = 0; i < request.lanczos.bottom_k; ++i) {
        result->sharpness.bottom.push_back({-1.0 - i, 1e-9, true});
      }
      result->sharpness.iterations = 12;
      result->sharpness.converged = true;
      break;
    case core::MeasurementKind::kHessianTrace:
      result->trace = {42.0, 0.5, request.trace.min_probes,
                       "target_relative_error"};
      break;
    case core::MeasurementKind::kSpectralDensity:
      for (int r = 0; r < 2; ++r) {
        result->density.runs.push_back({{-1.0, 10.0}, {0.5, 0.5}, 2, true});
      }
      result->density.density.grid = {-1.0, 5.0, 11.0};
      result->density.density.density = {0.1, 0.0, 0.1};
      result->density.density.sigma = 0.11;
      result->density.density.sigma_rule = "0.01 x spread 11";
      result->density.estimates = {{"x", 4.5, 94.5, 0.0},
                                   {"1{|x|>t}", 1.0, 21.0, 0.0}};
      result->density.log_threshold = request.density.log_threshold;
      break;
    case core::MeasurementKind::kHutchpp:
      result->hutchpp = {42.0, 0.25, 40.0, 2.0,
                         3,    10,   16,   "target_relative_error"};
      break;
    case core::MeasurementKind::kTraceCubed:
      result->trace_cubed = {1000.0, 5.0, request.trace_cubed.min_probes,
                             "target_relative_error"};
      break;
    case core::MeasurementKind::kLossExpansion: {
      core::LossExpansionResult& e = result->loss_expansion;
      const core::LossExpansionOptions& o = request.loss_expansion;
      e.gradient_norm_squared = 2.0;
      e.gradient_curvature = 8.0;
      e.trace_cubed = {1000.0, 5.0, o.trace_cubed.min_probes,
                       "target_relative_error"};
      e.sigma_squared = 1.0 / (o.h0 * o.ess);
      e.first_order_term = -o.rho * e.gradient_norm_squared;
      e.second_order_term = o.rho * o.rho / 2 * e.gradient_curvature;
      e.noise_term = o.rho * o.rho * e.sigma_squared / (2 * o.num_steps) *
                     e.trace_cubed.trace;
      e.noise_term_standard_error = e.noise_term / 200;
      e.total = e.first_order_term + e.second_order_term + e.noise_term;
      e.total_standard_error = e.noise_term_standard_error;
      break;
    }
    case core::MeasurementKind::kExactHessian:
      result->exact_hessian.eigenvalues = {-1.0, 0.0, 10.0};
      result->exact_hessian.rank = 2;
      result->exact_hessian.rank_tolerance = 1e-12;
      result->exact_hessian.rank_rule = "3 x eps x 10";
      result->exact_hessian.positive = 1;
      result->exact_hessian.negative = 1;
      result->exact_hessian.condition_number = 10;
      result->exact_hessian.log_determinant_positive = std::log(10.0);
      if (request.exact_hessian.return_matrix) {
        result->exact_hessian.matrix = {-1, 0, 0, 0, 0, 0, 0, 0, 10};
      }
      break;
    case core::MeasurementKind::kPowerIteration:
      for (int i = 0; i < request.power_iteration.top_k; ++i) {
        result->power_iteration.pairs.push_back({10.0 - i, 1e-7, 30, true});
      }
      result->power_iteration.converged = true;
      break;
    case core::MeasurementKind::kLossSlice: {
      const core::LossSliceOptions& o = request.loss_slice;
      for (int i = 0; i < o.points; ++i) {
        const double t =
            o.points == 1 ? o.t_min
                          : o.t_min + (o.t_max - o.t_min) * i / (o.points - 1);
        result->loss_slice.t.push_back(t);
        result->loss_slice.loss.push_back(0.25 + t * t);
      }
      result->loss_slice.direction = "top eigenvector, lambda = 10";
      result->loss_slice.eigenvalue = 10;
      result->loss_slice.direction_curvature = 10;
      break;
    }
    case core::MeasurementKind::kPlan:
      for (core::MeasurementKind planned : request.plan) {
        FakeResult(planned, request, result);
      }
      break;
  }
}

// Every result (see FakeResult) reports 7 HVPs.
class FakeEngine : public core::Engine {
 public:
  FakeEngine(std::string device, std::shared_ptr<FakeEngineControl> control)
      : device_(std::move(device)), control_(std::move(control)) {}

  absl::StatusOr<core::MeasurementResult> Measure(
      const core::ModelSource& model, const core::ShardSpec& shard,
      const core::MeasurementRequest& request,
      const core::Progress& progress) override {
    {
      absl::MutexLock lock(&control_->mu_);
      ++control_->started_;
    }
    if (progress.report) progress.report(0.5, "halfway");
    while (true) {
      absl::MutexLock lock(&control_->mu_);
      if (!control_->blocked_) break;
      if (progress.cancelled && progress.cancelled()) {
        return absl::CancelledError("cancelled");
      }
      auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_->mu_) {
        return !control_->blocked_;
      };
      control_->mu_.AwaitWithTimeout(absl::Condition(&released),
                                     absl::Milliseconds(5));
    }
    {
      absl::MutexLock lock(&control_->mu_);
      if (!control_->fail_.ok()) return control_->fail_;
    }
    core::MeasurementResult result;
    result.kind = request.kind;
    FakeResult(request.kind, request, &result);
    if (request.kind == core::MeasurementKind::kPlan) {
      result.shared.push_back("the plan's methods shared one objective");
    }
    result.op = request.op;
    result.block_parameters = request.block.names;
    result.hvps = 7;
    result.loss = 0.25;
    result.num_samples = 8;
    result.num_parameters = 21;
    result.compute_seconds = 0.001;
    result.device = device_;
    return result;
  }

  std::string device() const override { return device_; }

 private:
  const std::string device_;
  std::shared_ptr<FakeEngineControl> control_;
};

}  // namespace curvd::server::testing

#endif  // CURVD_TESTS_SERVER_FAKE_ENGINE_H_

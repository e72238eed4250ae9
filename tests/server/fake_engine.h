// A core::Engine for service tests: deterministic results without torch, and
// controls to make it fail, block until released, or stop on cancellation.
#ifndef CURVD_TESTS_SERVER_FAKE_ENGINE_H_
#define CURVD_TESTS_SERVER_FAKE_ENGINE_H_

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

// Sharpness results are top[i] = 10 - i (bottom[i] = -1 - i); trace results are
// 42 +- 0.5 over min_probes probes. Every result reports 7 HVPs.
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
    if (request.kind == core::MeasurementKind::kSharpness) {
      for (int i = 0; i < request.lanczos.top_k; ++i) {
        result.sharpness.top.push_back({10.0 - i, 1e-9, true});
      }
      for (int i = 0; i < request.lanczos.bottom_k; ++i) {
        result.sharpness.bottom.push_back({-1.0 - i, 1e-9, true});
      }
      result.sharpness.iterations = 12;
      result.sharpness.converged = true;
    } else {
      result.trace = {42.0, 0.5, request.trace.min_probes,
                      "target_relative_error"};
    }
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

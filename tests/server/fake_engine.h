// A core::Engine for service tests: deterministic results without torch, and
// controls to make it fail, block until released, or stop on cancellation.
#ifndef CURVD_TESTS_SERVER_FAKE_ENGINE_H_
#define CURVD_TESTS_SERVER_FAKE_ENGINE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/api/engine.h"
#include "server/thread_priority.h"

namespace curvd::server::testing {

// Shared by a test and every FakeEngine it made. Thread-safe.
class FakeEngineControl {
 public:
  // Later Measure calls wait (honouring cancellation) until Release().
  void Block() {
    absl::MutexLock lock(&mu_);
    blocked_ = true;
  }
  // Like Block, but deaf to cancellation: one engine call that outlasts any
  // grace (a forward pass of a huge model).
  void BlockIgnoringCancellation() {
    absl::MutexLock lock(&mu_);
    blocked_ = true;
    deaf_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    blocked_ = false;
    deaf_ = false;
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
  // The nice value of the thread that ran the latest Measure call.
  int last_measure_nice() {
    absl::MutexLock lock(&mu_);
    return last_measure_nice_;
  }
  // Later PlanSplit calls by kIfLargeEnough plan no helper.
  void SetSmallSplitWork() {
    absl::MutexLock lock(&mu_);
    small_split_work_ = true;
  }
  // The helpers' devices of the latest MeasureSplit call, the rule of the
  // latest PlanSplit call.
  std::vector<std::string> last_split_helpers() {
    absl::MutexLock lock(&mu_);
    return last_split_helpers_;
  }
  std::optional<core::SplitRule> last_split_rule() {
    absl::MutexLock lock(&mu_);
    return last_split_rule_;
  }

 private:
  friend class FakeEngine;
  absl::Mutex mu_;
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  bool deaf_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
  int started_ ABSL_GUARDED_BY(mu_) = 0;
  int last_measure_nice_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> last_split_helpers_ ABSL_GUARDED_BY(mu_);
  std::optional<core::SplitRule> last_split_rule_ ABSL_GUARDED_BY(mu_);
  bool small_split_work_ ABSL_GUARDED_BY(mu_) = false;
};

// Fixed, plausible results, one overload per kind (a kind without one does
// not compile): sharpness top[i] = 10 - i (bottom[i] = -1 - i); traces 42 +-
// 0.5 over min_probes probes; Hutch++ 42 +- 0.25; tr(H^3) 1000 +- 5; a
// two-run density on [-1, 11]; an exact Hessian with eigenvalues -1, 0, 10;
// power iteration 10 - i; a loss slice of 0.25 + t^2 over the requested
// points; an LLC of 5 +- 0.5 (chain i at 4.5 + i / (chains - 1)) with
// n_beta resolved for n = kFakeSamples and a loss trace per chain; a
// calibration grid whose cells have lambda_hat 5 and recommend the largest
// step size at the first localization (none for a single step size).
inline void FakeResult(core::SharpnessMethod& m) {
  for (int i = 0; i < m.options.top_k; ++i) {
    m.result.top.push_back({10.0 - i, 1e-9, true});
  }
  for (int i = 0; i < m.options.bottom_k; ++i) {
    m.result.bottom.push_back({-1.0 - i, 1e-9, true});
  }
  m.result.iterations = 12;
  m.result.converged = true;
}

inline void FakeResult(core::HessianTraceMethod& m) {
  m.result = {42.0, 0.5, m.options.min_probes, "target_relative_error"};
}

inline void FakeResult(core::SpectralDensityMethod& m) {
  for (int r = 0; r < 2; ++r) {
    // T = [[4.5, 5.5], [5.5, 4.5]], whose eigenvalues are the nodes.
    m.result.runs.push_back(
        {{-1.0, 10.0}, {0.5, 0.5}, 2, true, {4.5, 4.5}, {5.5, 0.0}});
  }
  m.result.density.grid = {-1.0, 5.0, 11.0};
  m.result.density.density = {0.1, 0.0, 0.1};
  m.result.density.sigma = 0.11;
  m.result.density.sigma_rule = "0.01 x spread 11";
  m.result.estimates = {{"x", 4.5, 94.5, 0.0}, {"1{|x|>t}", 1.0, 21.0, 0.0}};
  m.result.log_threshold = m.options.log_threshold.value_or(0.0);
}

inline void FakeResult(core::HutchppMethod& m) {
  m.result = {42.0, 0.25, 40.0, 2.0, 3, 10, 16, "target_relative_error"};
}

inline void FakeResult(core::AdaptiveTraceMethod& m) {
  core::AdaptiveTraceResult& a = m.result;
  a.trace = 42.0;
  a.standard_error = 0.4;
  a.method = "hutch++";
  a.decision = "predicted remaining products: hutchinson 900, hutch++ 24";
  a.sketch_size = 16;
  a.probes = 24;
  a.hvps = 2 * a.sketch_size + a.probes;
  a.stop_reason = "target_standard_error";
  a.frobenius_norm_squared = 50.0;
  a.sketch_frobenius_fraction = 0.875;
}

inline void FakeResult(core::TraceCubedMethod& m) {
  m.result = {1000.0, 5.0, m.options.min_probes, "target_relative_error"};
}

inline void FakeResult(core::LossExpansionMethod& m) {
  core::LossExpansionResult& e = m.result;
  const core::LossExpansionOptions& o = m.options;
  e.gradient_norm_squared = 2.0;
  e.gradient_curvature = 8.0;
  e.trace_cubed = {1000.0, 5.0, o.trace_cubed.min_probes,
                   "target_relative_error"};
  e.sigma_squared = 1.0 / (o.h0 * o.ess);
  e.first_order_term = -o.rho * e.gradient_norm_squared;
  e.second_order_term = o.rho * o.rho / 2 * e.gradient_curvature;
  e.noise_term =
      o.rho * o.rho * e.sigma_squared / (2 * o.num_steps) * e.trace_cubed.trace;
  e.noise_term_standard_error = e.noise_term / 200;
  e.total = e.first_order_term + e.second_order_term + e.noise_term;
  e.total_standard_error = e.noise_term_standard_error;
}

inline void FakeResult(core::ExactHessianMethod& m) {
  core::ExactHessianResult& x = m.result;
  x.eigenvalues = {-1.0, 0.0, 10.0};
  x.rank = 2;
  x.rank_tolerance = 1e-12;
  x.rank_rule = "3 x eps x 10";
  x.positive = 1;
  x.negative = 1;
  x.condition_number = 10;
  x.log_determinant_positive = std::log(10.0);
  if (m.options.return_matrix) x.matrix = {-1, 0, 0, 0, 0, 0, 0, 0, 10};
}

inline void FakeResult(core::PowerIterationMethod& m) {
  for (int i = 0; i < m.options.top_k; ++i) {
    m.result.pairs.push_back({10.0 - i, 1e-7, 30, true});
  }
  m.result.converged = true;
}

inline void FakeResult(core::LossSliceMethod& m) {
  const core::LossSliceOptions& o = m.options;
  for (int i = 0; i < o.points; ++i) {
    const double t = o.points == 1
                         ? o.t_min
                         : o.t_min + (o.t_max - o.t_min) * i / (o.points - 1);
    m.result.t.push_back(t);
    m.result.loss.push_back(0.25 + t * t);
  }
  m.result.direction = "top eigenvector, lambda = 10";
  m.result.eigenvalue = 10;
  m.result.direction_curvature = 10;
}

// The shard's size the fake engine reports (MeasurementResult::num_samples).
inline constexpr int64_t kFakeSamples = 8;

inline core::LlcResult FakeLlc(const core::LlcOptions& o) {
  core::LlcResult r;
  r.num_samples = kFakeSamples;
  r.batch_size = std::min<int64_t>(o.batch_size, kFakeSamples);
  const double n = o.n_beta_convention == core::NBetaConvention::kBatch
                       ? static_cast<double>(r.batch_size)
                       : static_cast<double>(kFakeSamples);
  r.n_beta = o.n_beta_convention == core::NBetaConvention::kGiven
                 ? o.n_beta
                 : n / std::log(n);
  r.initial_loss = 0.25;
  const int draws = std::min(o.draws, o.trace_cap);
  for (int i = 0; i < o.chains; ++i) {
    core::LlcChain chain;
    chain.llc =
        o.chains == 1 ? 5.0 : 4.5 + static_cast<double>(i) / (o.chains - 1);
    for (int d = 0; d < draws; ++d) {
      chain.loss_trace.push_back(r.initial_loss + chain.llc / r.n_beta);
      chain.llc_running_mean.push_back(chain.llc);
      chain.distance_trace.push_back(0.1);
    }
    if (o.sampler == core::LlcSampler::kMala) chain.acceptance_rate = 0.6;
    if (o.sampler == core::LlcSampler::kSgnht) chain.kinetic_temperature = 1;
    r.chains.push_back(std::move(chain));
  }
  r.llc_mean = 5;
  r.llc_std = o.chains == 1 ? 0 : 0.5;
  r.llc_standard_error = r.llc_std / std::sqrt(static_cast<double>(o.chains));
  r.trace_stride = 1;
  if (o.chains >= 2 && draws >= 4) {
    r.r_hat = 1.01;
    r.effective_sample_size = 0.5 * o.chains * draws;
  }
  if (o.n_beta_convention == core::NBetaConvention::kDataset) {
    r.wbic = kFakeSamples * (r.initial_loss + r.llc_mean / r.n_beta);
  }
  if (o.sampler == core::LlcSampler::kMala) r.acceptance_rate = 0.6;
  r.divergence_threshold = o.divergence_factor * 0.25;
  r.steps = o.burn_in + static_cast<int64_t>(o.draws) * o.steps_between_draws;
  return r;
}

// The GOP of a fake two-layer model ("fc0" 6 and "fc1" 4 parameters) with
// eigenvalues 3 and 1: traces 4 = 3 + 1 to the whole, split 3 : 1.
inline core::GopMetrics FakeGopMetrics(int64_t size,
                                       std::vector<double> eigenvalues) {
  core::GopMetrics metrics;
  metrics.size = size;
  for (double lambda : eigenvalues) metrics.trace += lambda;
  metrics.rank = static_cast<int64_t>(eigenvalues.size());
  metrics.spectral_norm = eigenvalues.front();
  metrics.top_eigenvalues = eigenvalues;
  metrics.eigenvalues = std::move(eigenvalues);
  return metrics;
}

inline void FakeResult(core::GopMethod& m) {
  core::GopResult& r = m.result;
  r.variant = m.options.variant;
  r.num_samples = m.options.num_samples == 0 ? 8 : m.options.num_samples;
  r.num_parameters = 10;
  r.path = "generic";
  r.metrics = FakeGopMetrics(10, {3.0, 1.0});
  if (m.options.per_layer) {
    r.layers.push_back({"fc0", 6, FakeGopMetrics(6, {3.0}), 0.75});
    r.layers.push_back({"fc1", 4, FakeGopMetrics(4, {1.0}), 0.25});
  }
  r.gradient_norms.mean = 2.0;
  r.gradient_norms.quantiles = {1.0, 1.5, 2.0, 2.5, 3.0};
}

inline void FakeResult(core::LlcMethod& m) {
  m.result = FakeLlc(m.options);
  m.options.n_beta = m.result.n_beta;  // as the engine's plan runner does
}

inline void FakeResult(core::LlcCalibrationMethod& m) {
  const core::LlcCalibrationOptions& o = m.options;
  for (double localization : o.localizations) {
    for (double step_size : o.step_sizes) {
      core::LlcCalibrationCell cell;
      cell.step_size = step_size;
      cell.localization = localization;
      cell.result = FakeLlc(o.base);
      cell.n_beta = cell.result.n_beta;
      m.result.cells.push_back(std::move(cell));
    }
  }
  // The largest step size of the first localization; none on a grid of one
  // step size, where no cell has a smaller neighbour to form a plateau with.
  m.result.recommended = static_cast<int>(o.step_sizes.size()) - 1;
  if (o.step_sizes.size() < 2) {
    m.result.recommended = -1;
    m.result.reason = "no plateau: one step size";
    return;
  }
  for (size_t i = 0; i < m.result.cells.size(); ++i) {
    if (static_cast<int>(i) != m.result.recommended) {
      m.result.cells[i].rejection = "a larger step size is on the plateau";
    }
  }
  m.result.reason = "the largest step size on the plateau";
}

// The request's methods with FakeResult's results.
inline std::vector<core::Method> FakeResults(
    const core::MeasurementRequest& request) {
  std::vector<core::Method> methods = request.methods;
  for (core::Method& method : methods) {
    std::visit([](auto& m) { FakeResult(m); }, method);
  }
  return methods;
}

// Every result (see FakeResult) reports 7 HVPs.
class FakeEngine : public core::Engine {
 public:
  FakeEngine(std::string device, std::shared_ptr<FakeEngineControl> control)
      : device_(std::move(device)), control_(std::move(control)) {}

  absl::StatusOr<core::MeasurementResult> Measure(
      const core::ModelSource& /*model*/, const core::ShardSpec& /*shard*/,
      const core::MeasurementRequest& request,
      const core::Progress& progress) override {
    {
      absl::MutexLock lock(&control_->mu_);
      ++control_->started_;
      control_->last_measure_nice_ = CurrentThreadNice();
    }
    if (progress.report) progress.report(0.5, "halfway");
    while (true) {
      absl::MutexLock lock(&control_->mu_);
      if (!control_->blocked_) break;
      if (!control_->deaf_ && progress.cancelled && progress.cancelled()) {
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
    result.methods = FakeResults(request);
    if (request.methods.size() > 1) {
      result.shared.push_back("the plan's methods shared one objective");
    }
    result.op = request.op;
    result.block_parameters = request.block.names;
    result.hvps = 7;
    result.loss = 0.25;
    result.num_samples = kFakeSamples;
    result.num_parameters = 21;
    result.compute_seconds = 0.001;
    result.device = device_;
    return result;
  }

  // Records the rule; plans every available helper, or none with "not
  // split: fake small work" after SetSmallSplitWork under kIfLargeEnough.
  absl::StatusOr<core::SplitPlan> PlanSplit(
      const core::ModelSource& /*model*/, const core::ShardSpec& /*shard*/,
      const core::MeasurementRequest& /*request*/, core::SplitRule rule,
      int available) override {
    absl::MutexLock lock(&control_->mu_);
    control_->last_split_rule_ = rule;
    core::SplitPlan plan;
    if (control_->small_split_work_ &&
        rule == core::SplitRule::kIfLargeEnough) {
      plan.note = "not split: fake small work";
    } else {
      plan.helpers = available;
    }
    return plan;
  }

  // Measure, recording the helpers, with a split note that names the
  // devices: "split: 3 parts: cuda:0, cuda:1, cuda:2".
  absl::StatusOr<core::MeasurementResult> MeasureSplit(
      const std::vector<core::Engine*>& helpers, const core::ModelSource& model,
      const core::ShardSpec& shard, const core::MeasurementRequest& request,
      const core::Progress& progress) override {
    std::vector<std::string> devices;
    for (core::Engine* helper : helpers) devices.push_back(helper->device());
    {
      absl::MutexLock lock(&control_->mu_);
      control_->last_split_helpers_ = devices;
    }
    absl::StatusOr<core::MeasurementResult> result =
        Measure(model, shard, request, progress);
    if (result.ok()) {
      result->split =
          absl::StrCat("split: ", helpers.size() + 1, " parts: ", device_, ", ",
                       absl::StrJoin(devices, ", "));
    }
    return result;
  }

  std::string device() const override { return device_; }

 private:
  const std::string device_;
  std::shared_ptr<FakeEngineControl> control_;
};

}  // namespace curvd::server::testing

#endif  // CURVD_TESTS_SERVER_FAKE_ENGINE_H_
